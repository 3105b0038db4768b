"""Part A's figures and tables, drawn only from each experiment's result files (result.npz, facts.json):
image grids (PNG), the benchmark, illusion and hybrid-sweep plots, and the pipe tables the report includes.

Uses numpy, matplotlib and PIL only (no torch). `draw(name, result_dir, out_dir)` writes
out_dir/<name>*.png (and <name>.md for tables); the report section report/sections/part_a.qmd names the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from difflab.figures.grids import save_figure, save_grid
from difflab.io import write_text

METHOD_NAMES = {"blur": "Gaussian blur", "one_step": "one-step", "iterative": "iterative"}
MEASURE_LABELS = {"mse": "MSE", "psnr": "PSNR (dB)", "ssim": "SSIM"}
VALUE_RANGES = {"mnist": (0.0, 1.0), "deepfloyd": (-1.0, 1.0)}  # each backend's image value range (Denoiser)
UNIT_RANGE_FIELDS = ("masks", "highpass")  # result arrays in [0, 1] on every backend (a mask; hybrids' highpass_view)


def columns(cols: list[np.ndarray]) -> np.ndarray:
    """Per-column batches (K, ...) -> (K * len(cols), ...) in row-major grid order: row k holds image k of each."""
    return np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:])


def split(images: np.ndarray, parts: int) -> list[np.ndarray]:
    """(parts * K, ...) -> parts batches of (K, ...), in order."""
    return list(images.reshape(parts, -1, *images.shape[1:]))


def _percent(rate: float) -> str:
    return "n/a" if rate != rate else f"{100 * rate:.0f}%"


def to_unit_range(arrays: dict, facts: dict) -> dict:
    """Image arrays (4-D float) mapped from the backend's value range (facts["backend"], VALUE_RANGES; MNIST when
    absent) to [0, 1] for display, (x - lo) / (hi - lo); UNIT_RANGE_FIELDS and other arrays unchanged."""
    lo, hi = VALUE_RANGES.get(facts.get("backend", "mnist"), (0.0, 1.0))
    if (lo, hi) == (0.0, 1.0):
        return arrays
    return {k: (v - lo) / (hi - lo) if v.ndim == 4 and v.dtype.kind == "f" and k not in UNIT_RANGE_FIELDS else v
            for k, v in arrays.items()}


def quoted(text) -> str:
    return f"“{text}”"


def sampling(r, facts, out: Path) -> None:
    """The samples per step count and prompt; with stage II, its upsampled rows below the stage I rows (shown at
    the same size, nearest-neighbour)."""
    prompts, steps = list(r["prompts"]), list(r["steps"])
    labels = [f"{quoted(p)}\n{n} steps" for n in steps for p in prompts]
    images = r["images"]
    upsampled = r.get("upsampled")
    if upsampled is not None and upsampled.size:
        factor = upsampled.shape[-1] // images.shape[-1]
        images = np.concatenate([images.repeat(factor, axis=-1).repeat(factor, axis=-2), upsampled])
        labels += [f"{label}\nstage II {upsampled.shape[-1]} px" for label in labels]
    save_grid(out / "sampling.png", images, nrow=len(labels), row_labels=labels)


def forward(r, facts, out: Path) -> None:
    K = len(r["indices"])
    titles = ["original"] + [f"t = {t}" for t in r["levels"]]
    save_grid(out / "forward.png", columns([r["originals"]] + split(r["noisy"], len(r["levels"]))), nrow=K, titles=titles)


def blur(r, facts, out: Path) -> None:
    L, K = len(r["levels"]), len(r["indices"])
    cols, titles = [], []
    for t, sigma, x_t, x_hat in zip(r["levels"], r["sigmas"], split(r["noisy"], L), split(r["blurred"], L)):
        cols += [x_t, x_hat]
        titles += [f"noisy t = {t}", f"blur σ = {sigma:g}"]
    save_grid(out / "blur.png", columns(cols), nrow=K, titles=titles)


def one_step(r, facts, out: Path) -> None:
    L, K = len(r["levels"]), len(r["indices"])
    cols, titles = [r["originals"]], ["original"]
    for t, x_t, x_hat in zip(r["levels"], split(r["noisy"], L), split(r["estimates"], L)):
        cols += [x_t, x_hat]
        titles += [f"noisy t = {t}", "one-step"]
    save_grid(out / "one_step.png", columns(cols), nrow=K, titles=titles)


def iterative(r, facts, out: Path) -> None:
    K = len(r["indices"])
    shown = split(r["steps"], len(r["shown_t"])) + [r["iterative"]]
    save_grid(out / "iterative_steps.png", columns(shown), nrow=K, titles=[f"t = {t}" for t in r["shown_t"]] + ["final"])
    save_grid(out / "iterative_compare.png",
              columns([r["originals"], r["noisy"], r["iterative"], r["one_step"], r["blurred"]]), nrow=K,
              titles=["original", f"noisy t = {facts['t_start']}", "iterative", "one-step", f"blur σ = {facts['blur_sigma']}"])


def benchmark(r, facts, out: Path) -> None:
    import matplotlib.pyplot as plt

    levels, methods, measures = list(r["levels"]), list(r["methods"]), list(r["measures"])
    mean, std = r["mean"], r["std"]
    fig, axes = plt.subplots(1, len(measures), figsize=(10, 3.2))
    for ki, (ax, key) in enumerate(zip(axes, measures)):
        for mi, method in enumerate(methods):
            ax.errorbar(levels, mean[mi, :, ki], yerr=std[mi, :, ki], label=METHOD_NAMES[method], marker="o", capsize=3,
                        linewidth=1.3, markersize=4)
        ax.set_xlabel("noise level t")
        ax.set_ylabel(MEASURE_LABELS[key])
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "benchmark.png")
    lines = ["| $t$ | method | MSE | PSNR (dB) | SSIM |", "|---:|:---|---:|---:|---:|"]
    for li, t in enumerate(levels):
        for mi, method in enumerate(methods):
            name = METHOD_NAMES[method] + (f" (σ = {r['sigmas'][li]:g})" if method == "blur" else "")
            m, s = mean[mi, li], std[mi, li]
            lines.append(f"| {t} | {name} | {m[0]:.4f} ± {s[0]:.4f} | {m[1]:.2f} ± {s[1]:.2f} | {m[2]:.3f} ± {s[2]:.3f} |")
    write_text(out / "benchmark.md", "\n".join(lines) + "\n")


def samples(r, facts, out: Path) -> None:
    titles = [f"reads {int(p)} ({float(c):.2f})" if p >= 0 else "" for p, c in zip(r["predicted"], r["confidence"])]
    save_grid(out / "samples.png", r["images"], nrow=1, titles=titles)


def cfg(r, facts, out: Path) -> None:
    prompts = r["prompts"] if "prompts" in r else [f"a {int(d)}" for d in r["digits"]]
    save_grid(out / "cfg.png", r["images"], nrow=1, titles=[quoted(p) for p in prompts])


def spacing(r, facts, out: Path) -> None:
    """FID against model calls for each spacing and guidance scale, and the table of every entry."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, (metric, label) in zip(axes, (("fid", f"FID (n = {facts['n']})"), ("class_accuracy", "class accuracy"))):
        for gamma in sorted(set(r["guidance"].tolist())):
            for name, style in (("leading", "o-"), ("trailing", "s--")):
                rows = (r["guidance"] == gamma) & (r["spacing"] == name)
                ax.plot(r["steps"][rows], r[metric][rows], style, label=f"{name}, γ = {gamma:g}")
        ax.set_xlabel("model calls (steps)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if np.isnan(r["fid"]).all():
        for ax in axes:
            ax.text(0.5, 0.5, f"not measured on backend {facts.get('backend', '')}\n(needs the MNIST classifier)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "spacing.png")
    lines = ["| γ | steps | spacing | class accuracy | FID | KID ± std |", "|---:|---:|:---|---:|---:|---:|"]
    for gamma, steps, name, acc, fid, kid, std in zip(r["guidance"], r["steps"], r["spacing"], r["class_accuracy"], r["fid"],
                                                     r["kid"], r["kid_std"]):
        cells = f"{100 * acc:.1f}% | {fid:.1f} | {kid:.3g} ± {std:.2g}" if fid == fid else "n/a | n/a | n/a"
        lines.append(f"| {gamma:g} | {int(steps)} | {name} | {cells} |")
    write_text(out / "spacing.md", "\n".join(lines) + "\n")


def _sdedit_grid(r, path: Path, last_title: str) -> None:
    I, K = len(r["i_starts"]), len(r["originals"])
    names = [str(n) for n in r["names"]]
    titles = [f"i={i} (t={t})" for i, t in zip(r["i_starts"], r["t_values"])] + [last_title]
    save_grid(path, columns(split(r["edits"], I) + [r["originals"]]), nrow=K, titles=titles,
              row_labels=names if any(names) else None)


def sdedit(r, facts, out: Path) -> None:
    _sdedit_grid(r, out / "sdedit.png", "original")


def sdedit_inputs(r, facts, out: Path) -> None:
    _sdedit_grid(r, out / "sdedit_inputs.png", "input")


def inpaint(r, facts, out: Path) -> None:
    originals, masks = r["originals"], r["masks"]
    K, M = len(originals), len(masks)
    S = len(r["images"]) // (K * M)
    rows = []
    for k in range(K):
        for j in range(M):
            hole = originals[k] * (1 - masks[j]) + 0.5 * masks[j]
            rows.append(np.concatenate([originals[k:k + 1], hole[None], r["images"][(k * M + j) * S:(k * M + j + 1) * S]]))
    save_grid(out / "inpaint.png", np.concatenate(rows), nrow=K * M,
              titles=["original", "mask (grey)"] + [f"sample {s + 1}" for s in range(S)])


def img2img(r, facts, out: Path) -> None:
    I = len(r["i_starts"])
    names = [f"{i} → {quoted(p)}" for p in r["prompts"] for i in r["indices"]]
    save_grid(out / "img2img.png", columns([r["sources"]] + split(r["edits"], I)), nrow=len(r["sources"]), row_labels=names,
              titles=["original"] + [f"i={i} (t={t})" for i, t in zip(r["i_starts"], r["t_values"])])


def anagrams(r, facts, out: Path) -> None:
    pairs = r["pairs"]
    up, flipped = split(r["images"], len(pairs)), split(r["flipped"], len(pairs))
    view = "flipped" if facts["view"] == "a vertical flip" else "rotated"
    labels = [label for p1, p2 in pairs for label in (f"{quoted(p1)}\nupright", f"{quoted(p2)}\n{view}")]
    save_grid(out / "anagrams.png", np.concatenate([x for pair in zip(up, flipped) for x in pair]), nrow=2 * len(pairs),
              row_labels=labels)


def hybrids(r, facts, out: Path) -> None:
    pairs = r["pairs"]
    J = len(pairs)
    batches = zip(split(r["images"], J), split(r["lowpass"], J), split(r["highpass"], J))
    labels = [label for p1, p2 in pairs for label in (f"{quoted(p1)} + {quoted(p2)}", f"low-pass\n({quoted(p1)})",
                                                      f"high-pass\n({quoted(p2)})")]
    save_grid(out / "hybrids.png", np.concatenate([x for b in batches for x in b]), nrow=3 * J, row_labels=labels)


def illusions(r, facts, out: Path) -> None:
    import matplotlib.pyplot as plt

    rates, kinds, labels, views = r["rates"], list(r["kinds"]), list(r["labels"]), r["views"]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(kinds)), 3.2))
    xs = np.arange(len(kinds))
    width = 0.27
    for offset, col, label in ((-width, 0, "first view"), (0, 1, "second view"), (width, 2, "both")):
        ax.bar(xs + offset, 100 * rates[:, col], width, label=label)
    ax.set_xticks(list(xs), [f"{k}\n{lab}" for k, lab in zip(kinds, labels)], fontsize=7)
    ax.set_ylabel("read as intended (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "illusions.png")
    lines = ["| illusion | prompts | first view | second view | both |", "|:---|:---|---:|---:|---:|"]
    for kind, label, (v1, v2), (r1, r2, both) in zip(kinds, labels, views, rates):
        lines.append(f"| {kind} | {label} | {v1}: {_percent(r1)} | {v2}: {_percent(r2)} | {_percent(both)} |")
    write_text(out / "illusions.md", "\n".join(lines) + "\n")


def hybrid_sweep(r, facts, out: Path) -> None:
    """hybrid_sweep.png: success (both views read as intended) against the low-pass sigma at the image size, one line
    per pair and the mean, the sigma the 1.9 figures use marked; hybrid_sweep.md: the same numbers as a pipe table."""
    import matplotlib.pyplot as plt

    sigmas, scaled, kernels = r["sigmas"], r["scaled_sigmas"], r["kernel_sizes"]
    rates, mean, pairs = r["rates"], r["mean_both"], [tuple(p) for p in r["pairs"]]
    used = float(r["used_sigma"]) * facts["image_size"] / facts["reference_size"]  # px at the image size
    writeup = int(r["writeup"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for j, (a, b) in enumerate(pairs):
        ax.plot(scaled, 100 * rates[:, j, 2], marker="o", lw=1, alpha=0.8, label=f"{quoted(a)} / {quoted(b)}")
    ax.plot(scaled, 100 * mean, marker="s", lw=2.5, color="black", label="mean")
    ax.axvline(used, color="tab:red", ls="--", lw=1.2, label=f"used: σ = {used:.3g} px")
    ax.axvline(float(scaled[writeup]), color="gray", ls=":", lw=1.2, label=f"writeup's σ = {float(scaled[writeup]):.3g} px")
    ax.set_xlabel(f"low-pass σ (px at {facts['image_size']} px)")
    ax.set_ylabel("both views read as intended (%)")
    ax.set_ylim(-3, 103)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "hybrid_sweep.png")
    import pandas as pd

    from difflab.metrics.tables import pipe_table

    ref, size = facts["reference_size"], facts["image_size"]
    columns = {f"σ at {ref} px": [f"{v:g}" for v in sigmas], f"σ at {size} px": [f"{v:.3g}" for v in scaled],
               "kernel (px)": [f"{int(k)}" for k in kernels]}
    for j, (a, b) in enumerate(pairs):
        columns[f"{quoted(a)} / {quoted(b)}"] = [f"{100 * v:.0f}%" for v in rates[:, j, 2]]
    columns["mean"] = [f"{100 * v:.0f}%" for v in mean]
    write_text(out / "hybrid_sweep.md", pipe_table(pd.DataFrame(columns)) + "\n")


FIGURES: dict[str, Callable] = {
    "sampling": sampling, "forward": forward, "blur": blur, "one_step": one_step, "iterative": iterative,
    "benchmark": benchmark, "samples": samples, "cfg": cfg, "spacing": spacing, "sdedit": sdedit, "sdedit_inputs": sdedit_inputs,
    "inpaint": inpaint, "img2img": img2img, "anagrams": anagrams, "hybrids": hybrids,
    "hybrid_sweep": hybrid_sweep, "illusions": illusions,
}


def draw(name: str, result_dir: str | Path, out_dir: str | Path) -> None:
    """Draw experiment `name`'s figures from result_dir/{result.npz, facts.json} into out_dir (created)."""
    result_dir, out = Path(result_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(result_dir / "result.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    facts = json.loads((result_dir / "facts.json").read_text())
    FIGURES[name](to_unit_range(arrays, facts), facts, out)
    if facts.get("backend", "mnist") != "mnist":
        for png in sorted(out.glob("*.png")):
            stamp_model(png, facts["model"])


def stamp_model(path: Path, text: str) -> None:
    """Add a white strip with `text` (the backend's model, facts["model"]) above the PNG at `path`, so a figure made
    on another backend than MNIST says so wherever it is shown."""
    from PIL import Image, ImageDraw

    from difflab.io import atomic_path

    with Image.open(path) as im:
        im = im.convert("RGB")
    strip = 18
    canvas = Image.new("RGB", (im.width, im.height + strip), "white")
    canvas.paste(im, (0, strip))
    ImageDraw.Draw(canvas).text((4, 3), text, fill="black")
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
