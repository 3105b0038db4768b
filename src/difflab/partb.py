"""`difflab partb <sub-verb>`: Part B figures, samples, sweeps, tables and report snippets (CS180 project 5).

    denoiser-figures  noising figure, loss curve and test-set denoising grids of the single-step denoiser (B.1)
    ood               the denoiser off its training noise level, against the best Gaussian blur and the
                      time-conditioned DDPM used as a one-step denoiser (figure, PSNR plot, table, tidy CSV)
    sample            N samples of a DDPM checkpoint (Algorithm B.2 / B.4) as an npz for FID
    ddpm-figures      loss curve, sample grids per evaluation epoch and a reverse-process GIF of one DDPM
    cfg-figures       the class model's samples per guidance scale and the FID / class-accuracy trade-off
    fid-table         FID per evaluation epoch of both DDPMs, the real-vs-real floor, class accuracies
    models            parameter count, width and training speed of every model

Every sub-verb takes `--settings '<json>'`: the config's part_b section plus the top-level seed, device and
profile. Figures go to --out-dir; the snippet (Pandoc markdown, no headings) is what the report includes,
and every number in it is formatted from a computed value.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from difflab import DifflabError
from difflab.cli import json_object
from difflab.io import atomic_path, stderr_logger, write_text
from difflab.runtime import map_in_chunks

# Candidate kernel sigmas (pixels) of the Gaussian-blur baseline; the best one per noise level is picked on
# held-out images. 0 (no blur) is left out on purpose: on a clean image it would give MSE 0 and PSNR = inf.
BLUR_SIGMAS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
NOISING_IMAGES = 4  # test digits in the noising figure
GRID_IMAGES = 8  # test digits in each denoising grid
OOD_IMAGES = 2  # test digits in the OOD sweep figure
DIGITS = 10
MODEL_NAMES = {
    "unconditional": "single-step denoiser (B.1)",
    "time": "time-conditioned DDPM (B.2)",
    "class": "class-conditioned DDPM (B.4)",
    "classifier": "MNIST classifier (FID features)",
}


log = stderr_logger("difflab partb")


# ----------------------------------------------------------------------------- settings and inputs

def setting(settings: dict, path: str):
    """settings[a][b] for path 'a.b'; a missing key is a DifflabError naming the config key."""
    node = settings
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            name = path if path in ("seed", "device", "profile") else f"part_b.{path}"
            raise DifflabError(f"--settings lacks config key '{name}'")
        node = node[key]
    return node


def start(settings: dict) -> tuple[torch.device, int]:
    """Threads, deterministic kernels, and the (device, seed) of a job."""
    from difflab.runtime import configure_threads, enable_determinism, resolve_device

    configure_threads()
    enable_determinism()
    return resolve_device(settings.get("device", "auto")), int(setting(settings, "seed"))


def load_unets(paths: list[str], device, architectures: tuple[str, ...]) -> list[tuple[str, torch.nn.Module, dict]]:
    """(path, model in eval mode, checkpoint) for each path, sorted by epoch; each must hold one of `architectures`."""
    from difflab.checkpoint import load_model

    loaded = []
    for path in paths:
        model, ckpt = load_model(path, device)
        if ckpt.get("architecture") not in architectures:
            raise DifflabError(f"{path}: holds a {ckpt.get('architecture')!r} model; expected {' or '.join(map(repr, architectures))}")
        loaded.append((str(path), model, ckpt))
    epochs = [ckpt.get("epoch") for _, _, ckpt in loaded]
    if len(set(epochs)) != len(epochs):
        raise DifflabError(f"checkpoints {', '.join(map(str, paths))} repeat an epoch ({epochs})")
    return sorted(loaded, key=lambda item: item[2]["epoch"])


def ddpm_schedule(ckpt: dict, path: str):
    """The noise schedule a DDPM checkpoint was trained with."""
    from difflab.schedule import NoiseSchedule

    try:
        return NoiseSchedule.linear(ckpt["beta_start"], ckpt["beta_end"], ckpt["num_timesteps"])
    except KeyError as exc:
        raise DifflabError(f"{path}: DDPM checkpoint lacks {exc.args[0]!r}") from None


def test_images(path: str, device) -> Tensor:
    from difflab.data import mnist_tensors

    return mnist_tensors(path, "test", device=device)[0]


@torch.no_grad()
def apply_batched(fn, x: Tensor, batch_size: int) -> Tensor:
    """fn over x in chunks of batch_size along the first dimension (smaller chunks after an out-of-memory)."""
    return torch.cat(map_in_chunks(lambda a, b: fn(x[a:b]), x.shape[0], batch_size, "in a batched forward pass")[0])


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur with std sigma (pixels) and a 2 ceil(3 sigma) + 1 kernel (difflab.edit.algorithms)."""
    from difflab.edit.algorithms import gaussian_kernel_size, lowpass

    return lowpass(x, gaussian_kernel_size(sigma), sigma)


# ----------------------------------------------------------------------------- snippet helpers

def figure_md(path: str | Path, caption: str, ident: str) -> str:
    """A Pandoc figure: ![caption](path){#fig-b-ident}, path relative to the repository root as given."""
    return f"![{caption}]({Path(path).as_posix()}){{#fig-b-{ident}}}"


def write_snippet(path: str, paragraphs: list[str]) -> None:
    write_text(path, "\n\n".join(p.strip() for p in paragraphs) + "\n")
    log(f"wrote {path}")


def g(x: float, digits: int = 3) -> str:
    """A number with `digits` significant digits (no trailing zeros)."""
    return f"{x:.{digits}g}"


def number_list(values) -> str:
    return ", ".join(g(float(v)) for v in values)


def guidance_of(parameter: str) -> float | None:
    """The gamma of a metrics 'parameter' such as 'guidance=5'; None when there is none."""
    for part in str(parameter).split(","):
        key, _, value = part.strip().partition("=")
        if key == "guidance" and value:
            return float(value)
    return None


def plot_loss(path: Path, ckpt: dict, title: str) -> tuple[float, float, int, int]:
    """Log-y training loss per step, with the mean of each epoch. Returns (first loss, last-epoch mean, steps, epochs)."""
    from difflab.figures.grids import plot_curves

    losses, per_epoch = list(ckpt.get("losses") or []), int(ckpt.get("steps_per_epoch") or 0)
    if not losses or per_epoch < 1:
        raise DifflabError(f"checkpoint of epoch {ckpt.get('epoch')} holds no training losses")
    epochs = math.ceil(len(losses) / per_epoch)
    ends = [min((e + 1) * per_epoch, len(losses)) for e in range(epochs)]
    means = [float(np.mean(losses[e * per_epoch: ends[e]])) for e in range(epochs)]
    plot_curves(path, {"per step": (range(1, len(losses) + 1), losses), "epoch mean": (ends, means)},
                "training step", "loss (MSE)", title, logy=True)
    return losses[0], means[-1], len(losses), epochs


# ----------------------------------------------------------------------------- denoiser-figures

def denoiser_figures(args) -> None:
    from difflab.metrics.image_quality import mse_per_image
    from difflab.runtime import make_generator
    from difflab.schedule import add_gaussian_noise
    from difflab.figures.grids import save_grid

    device, seed = start(args.settings)
    levels = [float(s) for s in setting(args.settings, "denoiser.noise_levels")]
    batch_size = int(setting(args.settings, "ddpm.sample_batch_size"))
    loaded = load_unets(args.checkpoints, device, ("unconditional",))
    sigma = float(loaded[-1][2].get("sigma", setting(args.settings, "denoiser.sigma")))
    x_test = test_images(args.data, device)
    n_eval = min(int(setting(args.settings, "denoiser.ood_num_images")), x_test.shape[0])
    out = Path(args.out_dir)
    paragraphs = []

    # Noising: the same eps scaled by each sigma, z = x + sigma eps (eq B.2).
    shown = x_test[:NOISING_IMAGES]
    eps = torch.randn(shown.shape, generator=make_generator(seed, "partb", "noising", device=device), device=device)
    tiles = torch.stack([add_gaussian_noise(shown[i], s, eps[i]) for i in range(shown.shape[0]) for s in levels])
    save_grid(out / "noising.png", tiles, nrow=shown.shape[0], titles=[f"σ = {s:g}" for s in levels])
    paragraphs.append(
        f"Noising a clean digit $x$ as $z = x + \\sigma\\epsilon$, $\\epsilon \\sim \\mathcal{{N}}(0, I)$ (eq. B.2), "
        f"with one $\\epsilon$ per digit scaled to every $\\sigma$; the denoiser is trained at $\\sigma = {g(sigma)}$.\n\n"
        + figure_md(out / "noising.png", f"The first {shown.shape[0]} MNIST test digits noised at σ ∈ {{{number_list(levels)}}} (seed {seed}); pixels outside [0, 1] are clipped for display.", "noising")
    )

    # Loss curve of the whole training, from the last checkpoint.
    last_ckpt = loaded[-1][2]
    first, final_mean, steps, epochs = plot_loss(out / "loss.png", last_ckpt, f"single-step denoiser, σ = {g(sigma)}")
    paragraphs.append(
        f"The UNet $D_\\theta$ (D = {last_ckpt['hidden']}) minimises $\\lVert D_\\theta(z) - x \\rVert^2$ (eq. B.1) with fresh noise in every batch. "
        f"Its loss goes from {g(first)} at the first step to a mean of {g(final_mean)} over epoch {epochs} ({steps} steps in all).\n\n"
        + figure_md(out / "loss.png", f"Training loss of the single-step denoiser at every step (log scale) with per-epoch means; σ = {g(sigma)}, {epochs} epochs, {steps} steps.", "denoiser-loss")
    )

    # Test-set denoising after each checkpoint's epoch: the same images and the same noise for every epoch.
    x_eval = x_test[:n_eval]
    eps = torch.randn(x_eval.shape, generator=make_generator(seed, "partb", "denoise-test", device=device), device=device)
    z = add_gaussian_noise(x_eval, sigma, eps)
    k = min(GRID_IMAGES, n_eval)
    results = []
    for path, model, ckpt in loaded:
        denoised = apply_batched(model, z, batch_size).clamp(0, 1)
        mse = mse_per_image(denoised, x_eval).mean().item()
        results.append((ckpt["epoch"], mse))
        name = f"denoised_epoch_{ckpt['epoch']}.png"
        save_grid(out / name, torch.cat([x_eval[:k], z[:k], denoised[:k]]), nrow=3, row_labels=["clean", f"noisy σ={g(sigma)}", "denoised"])
        paragraphs.append(figure_md(
            out / name,
            f"Test digits after epoch {ckpt['epoch']}: clean, noisy (σ = {g(sigma)}, seed {seed}) and the denoiser's output $D_\\theta(z)$; "
            f"MSE over {n_eval} test images {g(mse)}.",
            f"denoiser-epoch{ckpt['epoch']}",
        ))
    trend = "; ".join(f"after epoch {e}: {g(m)}" for e, m in results)
    paragraphs.insert(2, (
        f"On the first {n_eval} MNIST test images, noised once at $\\sigma = {g(sigma)}$ and denoised by each saved checkpoint, "
        f"the mean squared error of the output (clipped to [0, 1]) is {trend}."
    ))
    write_snippet(args.snippet, paragraphs)


# ----------------------------------------------------------------------------- ood

def ood(args) -> None:
    import pandas as pd

    from difflab.metrics.image_quality import mse_per_image, psnr_per_image
    from difflab.metrics.tables import markdown_table, write_metrics
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_one_step_denoise
    from difflab.schedule import add_gaussian_noise
    from difflab.figures.grids import plot_curves, save_grid

    device, seed = start(args.settings)
    levels = [float(s) for s in setting(args.settings, "denoiser.noise_levels")]
    holdout = int(setting(args.settings, "denoiser.blur_holdout"))
    batch_size = int(setting(args.settings, "ddpm.sample_batch_size"))
    (_, denoiser, dck), = load_unets([args.denoiser], device, ("unconditional",))
    (_, time_model, tck), = load_unets([args.time_model], device, ("time",))
    schedule = ddpm_schedule(tck, args.time_model).to(device)

    x_test = test_images(args.data, device)
    total = x_test.shape[0]
    if holdout >= total:
        raise DifflabError(f"config key 'part_b.denoiser.blur_holdout' is {holdout}; {args.data} has only {total} test images and some must remain for evaluation")
    # The evaluated images are the first ones; the blur is tuned on the last `holdout`, so the two never overlap.
    n = min(int(setting(args.settings, "denoiser.ood_num_images")), total - holdout)
    x_eval, x_hold = x_test[:n], x_test[total - holdout:]
    generator = make_generator(seed, "partb", "ood", device=device)
    eps_eval = torch.randn(x_eval.shape, generator=generator, device=device)
    eps_hold = torch.randn(x_hold.shape, generator=generator, device=device)

    train_sigma = float(dck.get("sigma", setting(args.settings, "denoiser.sigma")))
    methods = {"unet": f"UNet denoiser (trained at σ = {g(train_sigma)})", "blur": "best Gaussian blur", "ddpm": "DDPM one-step"}
    table, rows, shown = [], [], {key: [] for key in ("noisy", *methods)}
    for sigma in tqdm(levels, desc="OOD noise levels", unit="level"):
        z = add_gaussian_noise(x_eval, sigma, eps_eval)
        z_hold = add_gaussian_noise(x_hold, sigma, eps_hold)
        blur_mse = {b: mse_per_image(gaussian_blur(z_hold, b).clamp(0, 1), x_hold).mean().item() for b in BLUR_SIGMAS}
        best_blur = min(blur_mse, key=blur_mse.get)
        ddpm_out, t = ddpm_one_step_denoise(time_model, z, sigma, schedule, batch_size)
        outputs = {
            "unet": apply_batched(denoiser, z, batch_size).clamp(0, 1),
            "blur": apply_batched(lambda chunk: gaussian_blur(chunk, best_blur), z, batch_size).clamp(0, 1),
            "ddpm": ddpm_out.clamp(0, 1),
        }
        line = {"σ": sigma}
        parameter = f"sigma={sigma:g}"
        for key, image in outputs.items():
            mse, psnr = mse_per_image(image, x_eval).mean().item(), psnr_per_image(image, x_eval, value_range=(0.0, 1.0)).mean().item()
            line[f"{key} MSE"], line[f"{key} PSNR"] = mse, psnr
            model, epoch = {"unet": ("denoiser", dck["epoch"]), "blur": ("gaussian_blur", None), "ddpm": ("time", tck["epoch"])}[key]
            rows += [{"experiment": "ood", "model": model, "epoch": epoch, "parameter": parameter, "metric": "mse_mean", "value": mse, "n": n},
                     {"experiment": "ood", "model": model, "epoch": epoch, "parameter": parameter, "metric": "psnr_mean", "value": psnr, "n": n}]
        line["blur σ_b"], line["DDPM t"] = best_blur, t
        rows += [{"experiment": "ood", "model": "gaussian_blur", "parameter": parameter, "metric": "blur_sigma", "value": best_blur, "n": holdout},
                 {"experiment": "ood", "model": "time", "epoch": tck["epoch"], "parameter": parameter, "metric": "timestep", "value": t}]
        table.append(line)
        shown["noisy"].append(z[:OOD_IMAGES])
        for key in methods:
            shown[key].append(outputs[key][:OOD_IMAGES])

    write_metrics(args.metrics_out, rows)
    out = Path(args.out_dir)
    k = min(OOD_IMAGES, n)
    order = ["noisy", *methods]
    tiles = torch.stack([shown[key][j][i] for i in range(k) for key in order for j in range(len(levels))])
    labels = {"noisy": "noisy", "unet": "UNet", "blur": "blur", "ddpm": "DDPM 1-step"}
    save_grid(out / "ood_sweep.png", tiles, nrow=k * len(order), titles=[f"σ = {s:g}" for s in levels],
              row_labels=[labels[key] for _ in range(k) for key in order])
    plot_curves(out / "ood_psnr.png", {methods[key]: (levels, [line[f"{key} PSNR"] for line in table]) for key in methods},
                "noise level σ", f"mean PSNR over {n} test images (dB)", "denoising off the training noise level", markers=True)

    df = pd.DataFrame([{
        "σ": line["σ"],
        "UNet MSE": line["unet MSE"], "UNet PSNR": line["unet PSNR"],
        "blur σ_b": line["blur σ_b"], "blur MSE": line["blur MSE"], "blur PSNR": line["blur PSNR"],
        "DDPM t": line["DDPM t"], "DDPM MSE": line["ddpm MSE"], "DDPM PSNR": line["ddpm PSNR"],
    } for line in table])
    at_train = min(table, key=lambda line: abs(line["σ"] - train_sigma))
    worst = max(table, key=lambda line: line["σ"])
    ddpm_wins = sum(line["ddpm PSNR"] > line["unet PSNR"] for line in table)
    unet_beats_blur = sum(line["unet PSNR"] > line["blur PSNR"] for line in table)
    caption = (f"Denoising the first {n} MNIST test images at each σ (one noise draw, seed {seed}): mean MSE and mean per-image PSNR (dB) "
               f"of outputs clipped to [0, 1] for the UNet denoiser (epoch {dck['epoch']}), the Gaussian blur whose kernel σ_b was picked per σ "
               f"from {{{number_list(BLUR_SIGMAS)}}} on {holdout} held-out test images (the last {holdout}, disjoint from the evaluated ones), "
               f"and the time-conditioned DDPM UNet (epoch {tck['epoch']}) as a one-step denoiser at the nearest timestep t.")
    paragraphs = [
        f"The denoiser was trained at a single noise level. We apply it to the same test digits noised at every "
        f"$\\sigma \\in \\{{{number_list(levels)}\\}}$ and compare it with the best Gaussian blur and with the time-conditioned DDPM UNet "
        f"used as a one-step denoiser: since $x_t/\\sqrt{{\\bar\\alpha_t}} = x_0 + \\sqrt{{(1-\\bar\\alpha_t)/\\bar\\alpha_t}}\\,\\epsilon$, "
        f"we feed $x_t = \\sqrt{{\\bar\\alpha_t}}\\,z$ at the $t$ nearest to $\\sigma^2 = (1-\\bar\\alpha_t)/\\bar\\alpha_t$ and read "
        f"$\\hat x_0 = (x_t - \\sqrt{{1-\\bar\\alpha_t}}\\,\\epsilon_\\theta(x_t, t/T))/\\sqrt{{\\bar\\alpha_t}}$.\n\n"
        + figure_md(out / "ood_sweep.png", f"The first {k} evaluated test digits, fixed, noised at σ ∈ {{{number_list(levels)}}} (seed {seed}) and the outputs of the UNet denoiser (trained at σ = {g(train_sigma)}), the best blur and the one-step DDPM.", "ood"),
        f"At $\\sigma = {g(at_train['σ'])}$ the UNet reaches {at_train['unet PSNR']:.2f} dB against {at_train['blur PSNR']:.2f} dB for the best blur "
        f"and {at_train['ddpm PSNR']:.2f} dB for the one-step DDPM; at $\\sigma = {g(worst['σ'])}$ the three reach {worst['unet PSNR']:.2f}, "
        f"{worst['blur PSNR']:.2f} and {worst['ddpm PSNR']:.2f} dB. The UNet beats the blur at {unet_beats_blur} of {len(table)} noise levels, "
        f"and the noise-conditioned DDPM beats the UNet at {ddpm_wins} of {len(table)}.\n\n"
        + markdown_table(df, caption, "tbl-b-ood"),
        figure_md(out / "ood_psnr.png", f"Mean PSNR over {n} test images against the noise level σ for the three denoisers of @tbl-b-ood.", "ood-psnr"),
    ]
    write_snippet(args.snippet, paragraphs)


# ----------------------------------------------------------------------------- sample

def sample(args) -> None:
    from difflab.runtime import derive_seed, make_generator
    from difflab.sampling import ddpm_sample

    device, seed = start(args.settings)
    (_, model, ckpt), = load_unets([args.checkpoint], device, ("time", "class"))
    arch = ckpt["architecture"]
    if args.n < 1:
        raise DifflabError(f"--n is {args.n}; expected a positive number of samples")
    labels, guidance = None, float("nan")
    if arch == "class":
        guidance = float(args.guidance if args.guidance is not None else setting(args.settings, "ddpm.guidance_scale"))
        labels = torch.arange(args.n, device=device) % DIGITS
    elif args.guidance is not None:
        raise DifflabError(f"{args.checkpoint}: --guidance applies to the class-conditioned model only; this is the time-conditioned one")
    keys = ("partb", "sample", arch)
    images, _ = ddpm_sample(model, ddpm_schedule(ckpt, args.checkpoint), args.n, make_generator(seed, *keys, device=device), device,
                            labels=labels, guidance_scale=None if labels is None else guidance,
                            batch_size=int(setting(args.settings, "ddpm.sample_batch_size")))
    arrays = {
        "images": images.clamp(0, 1)[:, 0].float().cpu().numpy(),
        "labels": (labels.cpu().numpy() if labels is not None else np.full(args.n, -1)).astype(np.int64),
        "guidance": np.float64(guidance),
        "epoch": np.int64(ckpt["epoch"]),
        "seed": np.int64(derive_seed(seed, *keys)),
    }
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    print(f"{args.n} samples of the {arch} DDPM (epoch {ckpt['epoch']}{'' if labels is None else f', guidance {guidance:g}'}) -> {args.out}")


# ----------------------------------------------------------------------------- ddpm-figures

def ddpm_figures(args) -> None:
    from difflab.models import count_parameters
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_sample
    from difflab.figures.grids import save_gif, save_grid

    device, seed = start(args.settings)
    kind = args.model
    loaded = load_unets(args.checkpoints, device, (kind,))
    batch_size = int(setting(args.settings, "ddpm.sample_batch_size"))
    gif_frames = int(setting(args.settings, "ddpm.gif_frames"))
    if kind == "time":
        n = int(setting(args.settings, "ddpm.time_grid_samples"))
        labels, guidance, nrow, titles = None, None, math.ceil(n / DIGITS), None
        what = f"{n} samples by Algorithm B.2"
    else:
        per_digit = int(setting(args.settings, "ddpm.class_grid_per_digit"))
        n, guidance = per_digit * DIGITS, float(setting(args.settings, "ddpm.guidance_scale"))
        labels = torch.arange(n, device=device) % DIGITS  # row r, column d holds digit d
        nrow, titles = per_digit, [str(d) for d in range(DIGITS)]
        what = f"{per_digit} samples of each digit (columns 0–9) by Algorithm B.4 with guidance γ = {g(guidance)}"
    out = Path(args.out_dir)
    title = {"time": "time-conditioned DDPM", "class": "class-conditioned DDPM"}[kind]
    last_path, _, last = loaded[-1]
    first, final_mean, steps, epochs = plot_loss(out / "loss.png", last, f"{title}, T = {last['num_timesteps']}")
    objective = "\\epsilon_\\theta(x_t, t/T)" if kind == "time" else "\\epsilon_\\theta(x_t, c, t/T)"
    dropped = "" if kind == "time" else f", with the one-hot class $c$ replaced by the zero vector with probability {g(last.get('p_uncond', float('nan')))} (Algorithm B.3)"
    paragraphs = [
        f"The {title} UNet (D = {last['hidden']}, {count_parameters(loaded[-1][1])} parameters) learns to predict the noise: "
        f"$t \\sim U\\{{0, \\dots, {last['num_timesteps'] - 1}\\}}$, $x_t = \\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_t}}\\,\\epsilon$ "
        f"and loss $\\lVert {objective} - \\epsilon \\rVert^2${dropped}. "
        f"The loss goes from {g(first)} at the first step to a mean of {g(final_mean)} over epoch {epochs} ({steps} steps in all).\n\n"
        + figure_md(out / "loss.png", f"Training loss of the {title} at every step (log scale) with per-epoch means; {epochs} epochs, {steps} steps.", f"{kind}-loss"),
    ]
    figures, frames = [], []
    for index, (path, model, ckpt) in enumerate(loaded):
        is_last = index == len(loaded) - 1
        # A fresh generator with the same seed for every epoch: the samples differ only through the weights.
        generator = make_generator(seed, "partb", "grid", kind, device=device)
        images, frames_here = ddpm_sample(model, ddpm_schedule(ckpt, path), n, generator, device, labels=labels,
                                          guidance_scale=guidance, batch_size=batch_size, frames=gif_frames if is_last else 0)
        if is_last:
            frames = frames_here
        name = f"samples_epoch_{ckpt['epoch']}.png"
        save_grid(out / name, images.clamp(0, 1), nrow=nrow, titles=titles)
        figures.append(figure_md(out / name, f"{title} after epoch {ckpt['epoch']}: {what}, T = {ckpt['num_timesteps']}, seed {seed} (the same noise at every epoch).",
                                 f"{kind}-epoch{ckpt['epoch']}"))
    save_gif(out / "reverse_process.gif", frames, nrow=nrow)
    epochs_list = ", ".join(str(ckpt["epoch"]) for _, _, ckpt in loaded)
    reverse = ("$\\epsilon = \\epsilon_\\theta(x_t, t/T)$" if kind == "time"
               else "$\\epsilon = \\epsilon_u + \\gamma(\\epsilon_c - \\epsilon_u)$, conditional and unconditional predictions from one batched forward pass")
    paragraphs.append(
        f"Sampling starts from $x_{{T-1}} \\sim \\mathcal{{N}}(0, I)$ and applies, for $t = T-1, \\dots, 0$, "
        f"$x_{{t-1}} = \\frac{{\\sqrt{{\\bar\\alpha_{{t-1}}}}\\beta_t}}{{1-\\bar\\alpha_t}}\\hat x_0 + \\frac{{\\sqrt{{\\alpha_t}}(1-\\bar\\alpha_{{t-1}})}}{{1-\\bar\\alpha_t}}x_t + \\sqrt{{\\beta_t}}\\,z$ "
        f"with {reverse} and $z = 0$ on the last step. The grids below come from the checkpoints of epochs {epochs_list}.\n\n"
        + "\n\n".join(figures)
    )
    paragraphs.append(figure_md(out / "reverse_process.gif",
                                f"The reverse process of the epoch-{last['epoch']} {title}: {len(frames)} evenly spaced frames from pure noise to the samples above ({what}, seed {seed}).",
                                f"{kind}-gif"))
    write_snippet(args.snippet, paragraphs)


# ----------------------------------------------------------------------------- cfg-figures

def primary_extractor(extractors) -> str:
    """The MNIST-classifier FID is the headline number; Inception FID (when present) is shown beside it."""
    extractors = sorted(set(extractors))
    return next((e for e in extractors if e.startswith("mnist-classifier")), extractors[0])


def fid_columns(df, keys: list[str]) -> "object":
    """One row per `keys` group: n and one 'FID [extractor]' column per extractor, plus class accuracy when present."""
    import pandas as pd

    fid = df[df["metric"] == "fid"]
    table = fid.pivot_table(index=keys, columns="extractor", values="value", aggfunc="first")
    first = primary_extractor(table.columns)
    table = table[[first] + [e for e in table.columns if e != first]]
    table.columns = [f"FID [{e}]" for e in table.columns]
    counts = fid.groupby(keys)["n"].max().rename("n")
    accuracy = df[df["metric"] == "class_accuracy"].groupby(keys)["value"].first().rename("class accuracy")
    return pd.concat([counts, table, accuracy], axis=1).reset_index()


def cfg_figures(args) -> None:
    import matplotlib.pyplot as plt

    from difflab.metrics.tables import markdown_table, read_metrics
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_sample
    from difflab.figures.grids import save_figure, save_grid

    device, seed = start(args.settings)
    (path, model, ckpt), = load_unets([args.checkpoint], device, ("class",))
    sweep = [float(x) for x in setting(args.settings, "ddpm.cfg_sweep")]
    batch_size = int(setting(args.settings, "ddpm.sample_batch_size"))
    labels = torch.arange(DIGITS, device=device)
    schedule = ddpm_schedule(ckpt, path)
    rows = []
    for gamma in sweep:
        generator = make_generator(seed, "partb", "cfg-grid", device=device)  # the same noise for every gamma
        rows.append(ddpm_sample(model, schedule, DIGITS, generator, device, labels=labels, guidance_scale=gamma, batch_size=batch_size)[0])
    out = Path(args.out_dir)
    save_grid(out / "cfg_sweep.png", torch.cat(rows).clamp(0, 1), nrow=len(sweep), titles=[str(d) for d in range(DIGITS)],
              row_labels=[f"γ = {gamma:g}" for gamma in sweep])

    df = read_metrics(*args.metrics)
    df = df[df["experiment"] == "cfg_sweep"].copy()
    if df.empty:
        raise DifflabError(f"{', '.join(args.metrics)}: no rows with experiment 'cfg_sweep'")
    df["γ"] = [guidance_of(p) for p in df["parameter"]]
    if df["γ"].isna().any():
        raise DifflabError(f"{', '.join(args.metrics)}: cfg_sweep rows need parameter 'guidance=<γ>'")
    table = fid_columns(df, ["γ"]).sort_values("γ")
    extractor = primary_extractor(df.loc[df["metric"] == "fid", "extractor"])
    fid_col = f"FID [{extractor}]"
    missing = sorted(set(sweep) - set(table["γ"]))
    if missing:
        log(f"warning: no FID for guidance {number_list(missing)} in the metrics files")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(table["γ"], table[fid_col], marker="o", color="tab:blue", label="FID")
    ax.set_xlabel("guidance scale γ")
    ax.set_ylabel(f"FID ({extractor})", color="tab:blue")
    ax.grid(True, alpha=0.3)
    if "class accuracy" in table and table["class accuracy"].notna().any():
        twin = ax.twinx()
        twin.plot(table["γ"], table["class accuracy"], marker="s", color="tab:red", label="class accuracy")
        twin.set_ylabel("class accuracy", color="tab:red")
    ax.set_title(f"classifier-free guidance, epoch {ckpt['epoch']}, n = {int(table['n'].max())}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "cfg_tradeoff.png")

    best = table.loc[table[fid_col].idxmin()]
    low, high = table.iloc[0], table.iloc[-1]
    accuracy_text = ""
    if "class accuracy" in table and table["class accuracy"].notna().all():
        accuracy_text = (f" The classifier recognises the requested digit in {low['class accuracy']:.1%} of the samples at γ = {g(low['γ'])} "
                         f"and {high['class accuracy']:.1%} at γ = {g(high['γ'])}.")
    n_samples = int(table["n"].max())
    paragraphs = [
        "Classifier-free guidance extrapolates from the unconditional to the conditional noise estimate, "
        "$\\epsilon = \\epsilon_u + \\gamma(\\epsilon_c - \\epsilon_u)$ (Algorithm B.4): $\\gamma = 0$ is unconditional sampling and $\\gamma = 1$ plain "
        "conditional sampling. Each row uses the same initial and step noise, so only $\\gamma$ changes.\n\n"
        + figure_md(out / "cfg_sweep.png", f"Class-conditioned DDPM (epoch {ckpt['epoch']}): one sample per digit (columns 0–9) for each γ ∈ {{{number_list(sweep)}}}, seed {seed}.", "cfg-grid"),
        f"Over {n_samples} samples per scale (labels cycling through the ten digits), the FID with the {extractor} features is lowest, {g(best[fid_col])}, "
        f"at γ = {g(best['γ'])}.{accuracy_text}\n\n"
        + figure_md(out / "cfg_tradeoff.png", f"FID ({extractor}, n = {n_samples}) and class accuracy of the samples against the guidance scale γ.", "cfg-tradeoff"),
        markdown_table(table, f"FID against {n_samples} MNIST test images (extractor in the column name) and class accuracy (the MNIST classifier's "
                       f"prediction equals the requested digit) of {n_samples} samples per guidance scale γ, class-conditioned DDPM of epoch {ckpt['epoch']}.", "tbl-b-cfg"),
    ]
    write_snippet(args.snippet, paragraphs)


# ----------------------------------------------------------------------------- fid-table

def fid_table(args) -> None:
    import pandas as pd

    from difflab.metrics.tables import markdown_table, read_metrics
    from difflab.figures.grids import plot_curves

    df = read_metrics(*args.metrics)
    sources = ", ".join(args.metrics)
    ddpm = df[df["experiment"].isin(["ddpm_time", "ddpm_class"])].copy()
    floor = df[df["experiment"] == "fid_floor"]
    if ddpm.empty or floor[floor["metric"] == "fid"].empty:
        raise DifflabError(f"{sources}: need FID rows of experiments ddpm_time / ddpm_class and fid_floor")
    names = {"ddpm_time": "time-conditioned", "ddpm_class": "class-conditioned"}

    def label(row) -> str:
        gamma = guidance_of(row["parameter"])
        return names[row["experiment"]] + ("" if gamma is None else f" (γ = {gamma:g})")

    ddpm["model"] = [label(row) for _, row in ddpm.iterrows()]
    ddpm["epoch"] = ddpm["epoch"].astype(object)
    per_epoch = fid_columns(ddpm, ["model", "epoch"])
    # time-conditioned rows first, then class-conditioned, each by epoch
    per_epoch = per_epoch.sort_values(["model", "epoch"], key=lambda col: col.str.startswith("class") if col.name == "model" else col.astype(int))
    per_epoch = per_epoch.reset_index(drop=True)
    floor_row = fid_columns(floor.assign(model="real vs real (train vs test)", epoch=""), ["model", "epoch"])
    table = pd.concat([per_epoch, floor_row], ignore_index=True)
    extractor = primary_extractor(ddpm.loc[ddpm["metric"] == "fid", "extractor"])
    fid_col = f"FID [{extractor}]"
    floor_value = float(floor_row[fid_col].iloc[0])

    out = Path(args.out_dir)
    curves = {}
    for name, part in per_epoch.groupby("model", sort=False):
        part = part.sort_values("epoch")
        curves[name] = (part["epoch"].astype(int).tolist(), part[fid_col].tolist())
    all_epochs = sorted({e for xs, _ in curves.values() for e in xs})
    curves["real vs real (floor)"] = ([all_epochs[0], all_epochs[-1]], [floor_value, floor_value])
    plot_curves(out / "fid_vs_epoch.png", curves, "epoch", f"FID ({extractor})", "FID of DDPM samples per evaluation epoch", markers=True)

    changes = []
    for name, (epochs, values) in curves.items():
        if name != "real vs real (floor)":
            changes.append(f"{g(values[0])} at epoch {epochs[0]} and {g(values[-1])} at epoch {epochs[-1]} for the {name} model")
    n_fid = int(per_epoch["n"].max())
    sentences = [
        f"The Fréchet distance $\\lVert\\mu_r - \\mu_g\\rVert^2 + \\mathrm{{Tr}}(\\Sigma_r + \\Sigma_g - 2(\\Sigma_r\\Sigma_g)^{{1/2}})$ between Gaussian fits of "
        f"{extractor} features of {n_fid} samples and as many MNIST test images is {'; '.join(changes)}. "
        f"{int(floor_row['n'].iloc[0])} training images against as many test images give the floor, {g(floor_value)}: the distance between "
        f"two sets of real digits of this size."
    ]
    classifier = df[(df["experiment"] == "classifier") & (df["metric"] == "test_accuracy")]
    if not classifier.empty:
        row = classifier.iloc[0]
        sentences.append(f"The classifier whose features define this FID labels {row['value']:.2%} of {int(row['n'])} MNIST test digits correctly, "
                         f"which bounds how well it can judge the class of the conditioned samples.")
    accuracy = per_epoch.dropna(subset=["class accuracy"]) if "class accuracy" in per_epoch else per_epoch.iloc[0:0]
    if not accuracy.empty:
        last = accuracy.sort_values("epoch").iloc[-1]
        sentences.append(f"At epoch {last['epoch']} it assigns {last['class accuracy']:.1%} of the class-conditioned samples to the requested digit.")
    caption = ("FID per evaluation epoch (extractor in the column name, n images per side), the real-vs-real floor, and the share of "
               "class-conditioned samples that the MNIST classifier assigns to the requested digit.")
    paragraphs = [
        " ".join(sentences) + "\n\n" + markdown_table(table, caption, "tbl-b-fid"),
        figure_md(out / "fid_vs_epoch.png", f"FID ({extractor}, n = {n_fid}) of each DDPM's samples against the training epoch; the flat line is the real-vs-real floor.", "fid"),
    ]
    write_snippet(args.snippet, paragraphs)


# ----------------------------------------------------------------------------- models

def models_table(args) -> None:
    import pandas as pd

    from difflab.checkpoint import load_model
    from difflab.metrics.tables import markdown_table
    from difflab.models import count_parameters

    rows = []
    paths = list(args.checkpoints) + ([args.classifier] if args.classifier else [])
    for path in paths:
        model, ckpt = load_model(path, "cpu")
        arch = ckpt.get("architecture")
        if arch == "classifier":
            history = ckpt.get("history") or []
            seconds = sum(h["seconds"] for h in history) if history else None
            speed = history[-1]["images_per_second"] if history else None
            width = ckpt["width"]
        else:
            seconds = sum(ckpt["epoch_seconds"]) if ckpt.get("epoch_seconds") else None
            speed = ckpt.get("images_per_second")
            width = ckpt["hidden"]
        rows.append({"model": MODEL_NAMES.get(arch, str(arch)), "width": width, "parameters": count_parameters(model),
                     "epochs": ckpt.get("epoch"), "training time (s)": seconds, "images / s (last epoch)": speed})
    df = pd.DataFrame(rows)
    counts = "; ".join(f"{row['model']}: {row['parameters']:,} (width {row['width']})" for row in rows)
    text = (f"Parameter counts: {counts}. Training time is the sum of the measured epoch times of this run; the throughput is that of the last epoch.\n\n"
            + markdown_table(df, "The trained models: hidden width (D for the UNets, W for the classifier), parameter count, epochs, measured training time and training images per second.", "tbl-b-models", floatfmt=".4g"))
    write_snippet(args.snippet, [text])


# ----------------------------------------------------------------------------- CLI

def add_figure_outputs(p: argparse.ArgumentParser, settings_help: str) -> None:
    """The options every figure-writing sub-verb takes: --settings, --out-dir and --snippet."""
    p.add_argument("--settings", required=True, type=json_object, help=settings_help)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--snippet", required=True)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab partb", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    settings_help = "JSON: the config's part_b section plus seed, device and profile"

    p = sub.add_parser("denoiser-figures", help="noising figure, loss curve and denoising grids of the single-step denoiser")
    p.add_argument("--data", required=True, help="results/data/mnist.npz")
    p.add_argument("--checkpoints", required=True, nargs="+", help="denoiser checkpoints (one grid per epoch)")
    add_figure_outputs(p, settings_help)
    p.set_defaults(run=denoiser_figures)

    p = sub.add_parser("ood", help="the denoiser across noise levels vs the best blur and the one-step DDPM")
    p.add_argument("--data", required=True, help="results/data/mnist.npz")
    p.add_argument("--denoiser", required=True, help="final denoiser checkpoint")
    p.add_argument("--time-model", required=True, help="final time-conditioned DDPM checkpoint")
    add_figure_outputs(p, settings_help)
    p.add_argument("--metrics-out", required=True, help="tidy CSV of the OOD table")
    p.set_defaults(run=ood)

    p = sub.add_parser("sample", help="N samples of a DDPM checkpoint as an npz (images in [0, 1], labels, guidance, epoch, seed)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--n", required=True, type=int)
    p.add_argument("--guidance", type=float, default=None, help="CFG scale of the class model (default part_b.ddpm.guidance_scale)")
    p.add_argument("--settings", required=True, type=json_object, help=settings_help)
    p.add_argument("--out", required=True)
    p.set_defaults(run=sample)

    p = sub.add_parser("ddpm-figures", help="loss curve, sample grid per epoch and reverse-process GIF of one DDPM")
    p.add_argument("--model", required=True, choices=["time", "class"])
    p.add_argument("--checkpoints", required=True, nargs="+")
    add_figure_outputs(p, settings_help)
    p.set_defaults(run=ddpm_figures)

    p = sub.add_parser("cfg-figures", help="samples per guidance scale and the FID / class-accuracy trade-off")
    p.add_argument("--checkpoint", required=True, help="final class-conditioned DDPM checkpoint")
    p.add_argument("--metrics", required=True, nargs="+", help="tidy CSVs of `metrics fid` on the cfg/guidance_<g>.npz samples")
    add_figure_outputs(p, settings_help)
    p.set_defaults(run=cfg_figures)

    p = sub.add_parser("fid-table", help="FID per evaluation epoch, the real-vs-real floor and class accuracies")
    p.add_argument("--metrics", required=True, nargs="+", help="tidy CSVs (ddpm_time, ddpm_class, fid_floor, classifier)")
    p.add_argument("--settings", type=json_object, default={}, help=settings_help + " (unused; accepted for symmetry)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--snippet", required=True)
    p.set_defaults(run=fid_table)

    p = sub.add_parser("models", help="parameter count, width and training speed of each model")
    p.add_argument("--checkpoints", required=True, nargs="+")
    p.add_argument("--classifier", default=None)
    p.add_argument("--snippet", required=True)
    p.set_defaults(run=models_table)

    args = parser.parse_args(argv)
    args.run(args)
