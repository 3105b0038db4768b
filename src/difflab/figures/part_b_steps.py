"""Figures of the quality-against-steps experiments (difflab.experiments.part_b.steps), from result files only.

    time_steps, class_steps   samples.png: the first ten samples of every (step count, sampler) cell
    steps                     steps.png: FID (and class accuracy) against model evaluations, log-x, both samplers
                              and both models; steps_table.md: every cell with KID and the wall time per 1,000
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.figures.grids import save_figure, save_grid

SAMPLER_NAMES = {"ddpm": "strided DDPM", "ddim": "DDIM"}
MODEL_NAMES = {"time": "time-conditioned", "class": "class-conditioned"}


def cells(r: dict, out: Path) -> None:
    labels = [f"{SAMPLER_NAMES[str(s)]}, {int(n)}" for s, n in zip(r["sampler"], r["steps"])]
    tiles = r["samples"].reshape(-1, *r["samples"].shape[2:])
    save_grid(out / "samples.png", tiles, nrow=len(labels), row_labels=labels, cell_inches=0.6)


def summary(r: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    from difflab.figures.part_b import kid_text, pipe_table

    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for model, style in (("time", "--"), ("class", "-")):
        for sampler, marker in (("ddpm", "o"), ("ddim", "s")):
            rows = (r["model"] == model) & (r["sampler"] == sampler)
            label = f"{MODEL_NAMES[model]}, {SAMPLER_NAMES[sampler]}"
            ax_fid.plot(r["evaluations"][rows], r["fid"][rows], style, marker=marker, label=label)
            if model == "class":
                ax_acc.plot(r["evaluations"][rows], r["class_accuracy"][rows], style, marker=marker, label=label)
    for ax, ylabel in ((ax_fid, f"FID ({r['extractor']})"), (ax_acc, "class accuracy (class model)")):
        ax.set_xscale("log")
        ax.set_xlabel("model evaluations per image (steps × forwards per step)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"quality against sampling steps, n = {int(r['n'])}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "steps.png")
    pipe_table(out / "steps_table.md", {
        "model": [MODEL_NAMES[str(m)] for m in r["model"]], "sampler": [SAMPLER_NAMES[str(s)] for s in r["sampler"]],
        "steps": [int(s) for s in r["steps"]], "model evaluations": [int(e) for e in r["evaluations"]],
        "FID": list(r["fid"]), "KID ± std": [kid_text(k, s) for k, s in zip(r["kid"], r["kid_std"])],
        "class accuracy": list(r["class_accuracy"]), "s / 1,000 samples": list(np.round(r["seconds_per_1000"], 3))})
