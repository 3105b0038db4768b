"""Part B figures and tables, drawn from result files only (results/experiments/part_b/<name>/result.npz).

`draw(name, result_dir, out_dir)` writes experiment <name>'s PNG/GIF files and markdown pipe tables (no caption:
the caption follows the include in report/sections/part_b.qmd). numpy, pandas, matplotlib and PIL only; no torch.

Files per experiment (under results/figures/part_b/<name>/):
    denoiser      noising.png, loss.png, denoised.png
    ood           ood_sweep.png, ood_psnr.png, ood_table.md
    time_grids    loss.png, samples.png            class_grids: the same
    time_gif      reverse_process.gif              class_gif: the same
    cfg           cfg_sweep.png
    cfg_tradeoff  cfg_tradeoff.png, cfg_table.md
    fid           fid_vs_epoch.png, fid_table.md
    ema           ema_fid_vs_epoch.png, ema_table.md
    models        models_table.md
    time_steps, class_steps, steps   see difflab.figures.part_b_steps
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab import DifflabError
from difflab.figures import part_b_steps as steps_figures
from difflab.figures.grids import plot_curves, save_figure, save_gif, save_grid
from difflab.io import write_text

DIGIT_TITLES = [str(d) for d in range(10)]
OOD_ROWS = {"noisy": "noisy", "unet": "UNet", "blur": "blur", "ddpm": "DDPM 1-step"}
OOD_LABELS = {"unet": "UNet denoiser", "blur": "best Gaussian blur", "ddpm": "DDPM one-step"}
TITLES = {"time": "time-conditioned DDPM", "class": "class-conditioned DDPM"}


def load_result(result_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of result_dir/result.npz. Raises DifflabError naming the file when it is missing."""
    path = Path(result_dir) / "result.npz"
    if not path.is_file():
        raise DifflabError(f"{path}: result file not found; run the experiment first")
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def pipe_table(path: Path, columns: dict[str, list], floatfmt: str = ".4g") -> None:
    """A Pandoc pipe table (no caption) of named columns, missing values (NaN) as empty cells, written atomically."""
    import pandas as pd

    from difflab.metrics.tables import pipe_table as table_text

    write_text(path, table_text(pd.DataFrame(columns), floatfmt) + "\n")


def plot_loss(path: Path, r: dict, title: str) -> None:
    """Log-y training loss per step with the mean of each epoch at the epoch's last step."""
    losses = r["losses"]
    plot_curves(path, {"per step": (range(1, len(losses) + 1), losses), "epoch mean": (r["loss_epoch_ends"], r["loss_epoch_means"])},
                "training step", "loss (MSE)", title, logy=True)


def denoiser(r: dict, out: Path) -> None:
    levels = r["noise_levels"]
    save_grid(out / "noising.png", r["noising"], nrow=len(r["noising"]) // len(levels), titles=[f"σ = {s:g}" for s in levels])
    plot_loss(out / "loss.png", r, f"single-step denoiser, σ = {float(r['sigma']):g}")
    # rows: clean, noisy, then the output after each kept epoch (the same images and noise throughout)
    tiles = np.concatenate([r["clean"], r["noisy"], *r["denoised"]])
    labels = ["clean", f"noisy σ={float(r['sigma']):g}", *(f"epoch {int(e)}" for e in r["epochs"])]
    save_grid(out / "denoised.png", tiles, nrow=len(labels), row_labels=labels)


def ood(r: dict, out: Path) -> None:
    levels, methods = r["noise_levels"], ("unet", "blur", "ddpm")
    k = len(r["shown"]) // (4 * len(levels))
    save_grid(out / "ood_sweep.png", r["shown"], nrow=4 * k, titles=[f"σ = {s:g}" for s in levels],
              row_labels=[OOD_ROWS[key] for _ in range(k) for key in ("noisy", *methods)])
    plot_curves(out / "ood_psnr.png", {OOD_LABELS[key]: (levels, r["psnr"][i]) for i, key in enumerate(methods)},
                "noise level σ", f"mean PSNR over {int(r['n'])} test images (dB)", "denoising off the training noise level", markers=True)
    mse, psnr = r["mse"], r["psnr"]
    pipe_table(out / "ood_table.md", {
        "σ": levels, "UNet MSE": mse[0], "UNet PSNR": psnr[0], "blur σ_b": r["blur_sigma"], "blur MSE": mse[1], "blur PSNR": psnr[1],
        "DDPM t": r["timestep"], "DDPM MSE": mse[2], "DDPM PSNR": psnr[2]})


def grids(r: dict, out: Path) -> None:
    kind, nrow = str(r["kind"]), int(r["nrow"])
    plot_loss(out / "loss.png", r, f"{TITLES[kind]}, T = {int(r['num_timesteps'])}")
    # one block of `nrow` rows per epoch, labelled on its first row
    tiles = np.concatenate(list(r["samples"]))
    labels = [f"epoch {int(e)}" if row == 0 else "" for e in r["epochs"] for row in range(nrow)]
    save_grid(out / "samples.png", tiles, nrow=nrow * len(r["epochs"]), titles=DIGIT_TITLES if kind == "class" else None, row_labels=labels)


def gif(r: dict, out: Path) -> None:
    save_gif(out / "reverse_process.gif", list(r["frames"]), nrow=int(r["nrow"]))


def cfg(r: dict, out: Path) -> None:
    gammas = r["guidance"]
    save_grid(out / "cfg_sweep.png", r["images"], nrow=len(gammas), titles=DIGIT_TITLES, row_labels=[f"γ = {x:g}" for x in gammas])


def fid_columns(r: dict) -> dict[str, list]:
    """Per extractor (primary first) a 'FID [extractor]' and a 'KID ± std [extractor]' column, plus n and class accuracy."""
    columns: dict[str, list] = {"n": [int(x) for x in r["n"]]}
    for i, e in enumerate(r["extractors"]):
        columns[f"FID [{e}]"] = list(r["fid"][:, i])
        columns[f"KID ± std [{e}]"] = [kid_text(k, s) for k, s in zip(r["kid"][:, i], r["kid_std"][:, i])]
    columns["class accuracy"] = list(r["accuracy"])
    return columns


def kid_text(kid: float, std: float) -> str:
    """'1.2e+03 ± 3.4e+02' (KID and its spread over subsets), '' when not measured."""
    return "" if np.isnan(kid) else f"{kid:.3g} ± {std:.2g}"


def cfg_tradeoff(r: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    extractor = str(r["extractors"][0])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(r["guidance"], r["fid"][:, 0], marker="o", color="tab:blue", label="FID")
    ax.set_xlabel("guidance scale γ")
    ax.set_ylabel(f"FID ({extractor})", color="tab:blue")
    ax.grid(True, alpha=0.3)
    twin = ax.twinx()
    twin.plot(r["guidance"], r["accuracy"], marker="s", color="tab:red", label="class accuracy")
    twin.set_ylabel("class accuracy", color="tab:red")
    ax.set_title(f"classifier-free guidance, epoch {int(r['epoch'])}, n = {int(np.nanmax(r['n']))}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "cfg_tradeoff.png")
    pipe_table(out / "cfg_table.md", {"γ": r["guidance"], **fid_columns(r)})


def fid(r: dict, out: Path) -> None:
    extractor = str(r["extractors"][0])
    curves = {}
    for name in dict.fromkeys(r["model"]):
        rows = r["model"] == name
        curves[str(name)] = (r["epoch"][rows], r["fid"][rows, 0])
    epochs = r["epoch"]
    curves["real vs real (floor)"] = ([int(epochs.min()), int(epochs.max())], [float(r["floor"][0])] * 2)
    plot_curves(out / "fid_vs_epoch.png", curves, "epoch", f"FID ({extractor})", "FID of DDPM samples per evaluation epoch", markers=True)
    columns = {"model": [str(m) for m in r["model"]], "epoch": [int(e) for e in epochs], **fid_columns(r)}
    columns["model"].append("real vs real (train vs test)")
    columns["epoch"].append("")
    columns["n"].append(int(r["floor_n"]))
    for i, e in enumerate(r["extractors"]):
        columns[f"FID [{e}]"] = [*columns[f"FID [{e}]"], float(r["floor"][i])]
        columns[f"KID ± std [{e}]"] = [*columns[f"KID ± std [{e}]"], kid_text(r["floor_kid"][i], r["floor_kid_std"][i])]
    columns["class accuracy"] = [*columns["class accuracy"], float("nan")]
    pipe_table(out / "fid_table.md", columns)


def ema(r: dict, out: Path) -> None:
    """FID against epoch of raw (solid) and EMA (dashed) weights, one colour per DDPM; the table of both."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for kind, colour in (("time", "tab:blue"), ("class", "tab:orange")):
        rows = r["model"] == kind
        for j, (weights, style) in enumerate(zip(r["weights"], ("-", "--"))):
            ax.plot(r["epoch"][rows], r["fid"][rows, j], style, marker="o" if j == 0 else "s", color=colour,
                    markersize=4, label=f"{TITLES[kind]}, {weights}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"FID ({r['extractor']})")
    ax.set_title(f"raw vs EMA weights (decay {float(r['ema_decay']):g}), n = {int(np.nanmax(r['n']))}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "ema_fid_vs_epoch.png")
    columns: dict[str, list] = {"model": [TITLES[str(m)] for m in r["model"]], "epoch": [int(e) for e in r["epoch"]],
                                "n": [int(x) for x in r["n"]]}
    for j, weights in enumerate(r["weights"]):
        columns[f"FID {weights}"] = list(r["fid"][:, j])
    for j, weights in enumerate(r["weights"]):
        columns[f"KID ± std {weights}"] = [kid_text(k, s) for k, s in zip(r["kid"][:, j], r["kid_std"][:, j])]
    for j, weights in enumerate(r["weights"]):
        columns[f"class accuracy {weights}"] = list(r["accuracy"][:, j])
    pipe_table(out / "ema_table.md", columns)


def models(r: dict, out: Path) -> None:
    pipe_table(out / "models_table.md", {
        "model": r["model"], "width": r["width"], "parameters": r["parameters"], "epochs": r["epochs"],
        "training time (s)": r["training_seconds"], "images / s (last epoch)": r["images_per_second"]})


FIGURES = {"denoiser": denoiser, "ood": ood, "time_grids": grids, "class_grids": grids, "time_gif": gif, "class_gif": gif,
           "cfg": cfg, "cfg_tradeoff": cfg_tradeoff, "fid": fid, "ema": ema,
           "models": models}
FIGURES.update(time_steps=steps_figures.cells, class_steps=steps_figures.cells, steps=steps_figures.summary)


def draw(name: str, result_dir: str | Path, out_dir: str | Path) -> None:
    """Draw experiment `name`'s figures and tables from result_dir into out_dir.
    Raises DifflabError for an unknown name or a missing result file."""
    if name not in FIGURES:
        raise DifflabError(f"no figures for Part B experiment {name!r}; expected one of {', '.join(FIGURES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    FIGURES[name](load_result(result_dir), out)
