"""Part B.1 experiments on the single-step denoiser: `denoiser` (noising, training loss, test-set denoising per
kept epoch) and `ood` (the denoiser off its training noise level, against the best Gaussian blur and the
time-conditioned DDPM UNet used as a one-step denoiser). Random draws, in order, from difflab.runtime.make_generator:
    denoiser: (seed, "partb", "noising") eps of the shown digits; (seed, "partb", "denoise-test") eps of the evaluated ones
    ood:      (seed, "partb", "ood") eps of the evaluated images, then eps of the held-out images
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from difflab import DifflabError
from difflab.data import mnist_tensors
from difflab.experiments.part_b import g, number_list
from difflab.performance import sample_batch
from difflab.experiments.part_b.checkpoints import (apply_batched, as_array, as_images, load_unets,
                                                    loss_curve)

NOISING_IMAGES = 4  # test digits in the noising figure
GRID_IMAGES = 8  # test digits in each denoising grid
OOD_IMAGES = 2  # test digits in the OOD sweep figure
OOD_METHODS = ("unet", "blur", "ddpm")  # the order of the method axis of OodResult arrays


@dataclass(frozen=True)
class DenoiserResult:
    """noising: (K*L, 1, 28, 28), order digit, noise level (z = x + sigma eps, unclipped); noise_levels: (L,);
    losses: (S,) per training step; loss_epoch_ends, loss_epoch_means: (E,); epochs: (C,) of the checkpoints;
    clean: (k, 1, 28, 28); noisy: (k, 1, 28, 28) at the training sigma (unclipped); denoised: (C, k, 1, 28, 28)
    in [0, 1]; mse: (C,) mean MSE over the n_eval evaluated test images. k = min(8, n_eval)."""

    noising: np.ndarray
    noise_levels: np.ndarray
    losses: np.ndarray
    loss_epoch_ends: np.ndarray
    loss_epoch_means: np.ndarray
    epochs: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray
    denoised: np.ndarray
    mse: np.ndarray
    sigma: float
    hidden: int
    seed: int
    n_eval: int
    rows: tuple = ()

    def facts(self) -> dict:
        return {
            "sigma": g(self.sigma), "hidden": int(self.hidden), "seed": int(self.seed),
            "noising_digits": int(self.noising.shape[0] // len(self.noise_levels)),
            "noise_levels": number_list(self.noise_levels),
            "first_loss": g(self.losses[0]), "final_loss_mean": g(self.loss_epoch_means[-1]),
            "trained_epochs": int(len(self.loss_epoch_means)), "steps": int(len(self.losses)),
            "n_eval": int(self.n_eval),
            "mse_by_epoch": "; ".join(f"after epoch {int(e)}: {g(m)}" for e, m in zip(self.epochs, self.mse)),
            "epochs": ", ".join(str(int(e)) for e in self.epochs),
            "last_epoch": int(self.epochs[-1]), "last_mse": g(self.mse[-1]),
        }


def denoiser(settings, device: torch.device, data: str, checkpoints: list[str]) -> DenoiserResult:
    """B.1: noise the first 4 test digits at every sigma of part_b.denoiser.noise_levels (one eps per digit),
    read the training loss of the last checkpoint, and denoise the first `ood_num_images` test images (noised
    once at the training sigma) with each checkpoint. Raises DifflabError for a non-denoiser checkpoint."""
    from difflab.metrics.image_quality import mse_per_image
    from difflab.runtime import make_generator
    from difflab.schedule import add_gaussian_noise

    seed = settings.seed
    # 1. inputs
    levels = [float(s) for s in settings.noise_levels]
    loaded = load_unets(checkpoints, device, ("unconditional",))
    last_path, _, last = loaded[-1]
    sigma = float(last.sigma)  # the training noise level; Checkpoint.from_payload requires it of a denoiser
    x_test = mnist_tensors(data, "test", device=device)[0]
    n_eval = min(int(settings.ood_num_images), x_test.shape[0])

    # 2. noising figure: the same eps scaled by each sigma, z = x + sigma eps (eq. B.2)
    shown = x_test[:NOISING_IMAGES]
    eps = torch.randn(shown.shape, generator=make_generator(seed, "partb", "noising", device=device), device=device)
    noising = torch.stack([add_gaussian_noise(shown[i], s, eps[i]) for i in range(shown.shape[0]) for s in levels])

    # 3. denoise the same images with the same noise after every kept epoch
    losses, ends, means = loss_curve(last, last_path)
    x_eval = x_test[:n_eval]
    eps = torch.randn(x_eval.shape, generator=make_generator(seed, "partb", "denoise-test", device=device), device=device)
    z = add_gaussian_noise(x_eval, sigma, eps)
    k = min(GRID_IMAGES, n_eval)
    denoised, mse, rows = [], [], []
    for _, model, ckpt in loaded:
        out = apply_batched(model, z, sample_batch(settings.sample_batch_size, z.shape[0], device)).clamp(0, 1)
        # 4. score
        mse.append(mse_per_image(out, x_eval).mean().item())
        denoised.append(as_images(out[:k]))
        rows.append({"experiment": "denoiser", "model": "denoiser", "epoch": ckpt.epoch, "parameter": f"sigma={sigma:g}",
                     "metric": "mse_mean", "value": mse[-1], "n": n_eval})
    return DenoiserResult(
        noising=as_array(noising), noise_levels=np.asarray(levels), losses=losses, loss_epoch_ends=ends, loss_epoch_means=means,
        epochs=np.asarray([c.epoch for _, _, c in loaded]), clean=as_images(x_eval[:k]), noisy=as_array(z[:k]),
        denoised=np.stack(denoised), mse=np.asarray(mse), sigma=sigma, hidden=int(last.hidden), seed=seed, n_eval=n_eval,
        rows=tuple(rows))


@dataclass(frozen=True)
class OodResult:
    """noise_levels: (L,); mse, psnr: (3, L) mean MSE and mean per-image PSNR (dB) of outputs clipped to [0, 1],
    methods in OOD_METHODS order (UNet denoiser, best blur, one-step DDPM); blur_sigma: (L,) the picked kernel
    sigma; timestep: (L,) the DDPM's t; blur_candidates: (B,); shown: (k*4*L, 1, 28, 28), order digit,
    row (noisy, UNet, blur, DDPM), noise level, k = min(2, n); noisy tiles unclipped, outputs in [0, 1]."""

    noise_levels: np.ndarray
    mse: np.ndarray
    psnr: np.ndarray
    blur_sigma: np.ndarray
    timestep: np.ndarray
    blur_candidates: np.ndarray
    shown: np.ndarray
    train_sigma: float
    denoiser_epoch: int
    time_epoch: int
    n: int
    holdout: int
    seed: int
    rows: tuple = ()

    def facts(self) -> dict:
        unet, blur, ddpm = self.psnr
        at_train = int(np.argmin(np.abs(self.noise_levels - self.train_sigma)))
        worst = int(np.argmax(self.noise_levels))
        return {
            "n": int(self.n), "holdout": int(self.holdout), "seed": int(self.seed), "train_sigma": g(self.train_sigma),
            "denoiser_epoch": int(self.denoiser_epoch), "time_epoch": int(self.time_epoch),
            "noise_levels": number_list(self.noise_levels), "blur_candidates": number_list(self.blur_candidates),
            "shown_digits": int(self.shown.shape[0] // (4 * len(self.noise_levels))),
            "num_levels": int(len(self.noise_levels)),
            "at_train_sigma": g(self.noise_levels[at_train]), "at_train_unet_psnr": f"{unet[at_train]:.2f}",
            "at_train_blur_psnr": f"{blur[at_train]:.2f}", "at_train_ddpm_psnr": f"{ddpm[at_train]:.2f}",
            "worst_sigma": g(self.noise_levels[worst]), "worst_unet_psnr": f"{unet[worst]:.2f}",
            "worst_blur_psnr": f"{blur[worst]:.2f}", "worst_ddpm_psnr": f"{ddpm[worst]:.2f}",
            "unet_beats_blur": int((unet > blur).sum()), "ddpm_beats_unet": int((ddpm > unet).sum()),
        }


def ood(settings, device: torch.device, data: str, denoiser: str, time_model: str) -> OodResult:
    """B.1.2: the first `ood_num_images` test images (at most all but the last `blur_holdout`) noised once and
    scaled to every sigma of noise_levels, denoised by the UNet denoiser, by the Gaussian blur whose sigma_b
    (difflab.metrics.baselines.best_blur_sigma over part_b.denoiser.blur_sigmas, abar = 1 for z = x + sigma eps)
    is picked on the last `blur_holdout` test images, and by the time-conditioned DDPM at the
    nearest timestep (difflab.sampling.ddpm_one_step_denoise).

    Raises DifflabError when blur_holdout leaves no test image to evaluate, or a checkpoint is of the wrong kind."""
    from difflab.edit.algorithms import blur_denoise
    from difflab.metrics.baselines import best_blur_sigma
    from difflab.metrics.image_quality import mse_per_image, psnr_per_image
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_one_step_denoise
    from difflab.schedule import add_gaussian_noise

    seed = settings.seed
    # 1. inputs
    levels = [float(s) for s in settings.noise_levels]
    holdout = int(settings.blur_holdout)
    (_, unet, dck), = load_unets([denoiser], device, ("unconditional",))
    (_, time_net, tck), = load_unets([time_model], device, ("time",))
    schedule = tck.schedule().to(device)
    x_test = mnist_tensors(data, "test", device=device)[0]
    total = x_test.shape[0]
    if holdout >= total:
        raise DifflabError(f"config key 'part_b.denoiser.blur_holdout' is {holdout}; {data} has only {total} test images and some must remain for evaluation")
    # The evaluated images are the first ones; the blur is tuned on the last `holdout`, so the two never overlap.
    n = min(int(settings.ood_num_images), total - holdout)
    x_eval, x_hold = x_test[:n], x_test[total - holdout:]
    batch_size = sample_batch(settings.sample_batch_size, n, device)
    # 2. noise
    generator = make_generator(seed, "partb", "ood", device=device)
    eps_eval = torch.randn(x_eval.shape, generator=generator, device=device)
    eps_hold = torch.randn(x_hold.shape, generator=generator, device=device)
    train_sigma = float(dck.sigma)

    mse, psnr, blur_sigma, timestep, rows = [], [], [], [], []
    shown = {key: [] for key in ("noisy", *OOD_METHODS)}
    k = min(OOD_IMAGES, n)
    for sigma in tqdm(levels, desc="OOD noise levels", unit="level"):
        z = add_gaussian_noise(x_eval, sigma, eps_eval)
        # 3. denoise
        best = best_blur_sigma(x_hold, add_gaussian_noise(x_hold, sigma, eps_hold), settings.blur_sigmas)
        ddpm_out, t = ddpm_one_step_denoise(time_net, z, sigma, schedule, batch_size)
        outputs = {
            "unet": apply_batched(unet, z, batch_size).clamp(0, 1),
            "blur": apply_batched(lambda chunk: blur_denoise(chunk, torch.ones(()), best), z, batch_size).clamp(0, 1),
            "ddpm": ddpm_out.clamp(0, 1),
        }
        # 4. score
        parameter = f"sigma={sigma:g}"
        level_mse, level_psnr = [], []
        for key in OOD_METHODS:
            level_mse.append(mse_per_image(outputs[key], x_eval).mean().item())
            level_psnr.append(psnr_per_image(outputs[key], x_eval, value_range=(0.0, 1.0)).mean().item())
            model, epoch = {"unet": ("denoiser", dck.epoch), "blur": ("gaussian_blur", None), "ddpm": ("time", tck.epoch)}[key]
            rows += [{"experiment": "ood", "model": model, "epoch": epoch, "parameter": parameter, "metric": "mse_mean", "value": level_mse[-1], "n": n},
                     {"experiment": "ood", "model": model, "epoch": epoch, "parameter": parameter, "metric": "psnr_mean", "value": level_psnr[-1], "n": n}]
        rows += [{"experiment": "ood", "model": "gaussian_blur", "parameter": parameter, "metric": "blur_sigma", "value": best, "n": holdout},
                 {"experiment": "ood", "model": "time", "epoch": tck.epoch, "parameter": parameter, "metric": "timestep", "value": t}]
        mse.append(level_mse)
        psnr.append(level_psnr)
        blur_sigma.append(best)
        timestep.append(t)
        shown["noisy"].append(as_array(z[:k]))
        for key in OOD_METHODS:
            shown[key].append(as_images(outputs[key][:k]))

    order = ("noisy", *OOD_METHODS)
    tiles = np.stack([shown[key][j][i] for i in range(k) for key in order for j in range(len(levels))])
    return OodResult(
        noise_levels=np.asarray(levels), mse=np.asarray(mse).T, psnr=np.asarray(psnr).T, blur_sigma=np.asarray(blur_sigma),
        timestep=np.asarray(timestep), blur_candidates=np.asarray(settings.blur_sigmas, dtype=float), shown=tiles, train_sigma=train_sigma,
        denoiser_epoch=int(dck.epoch), time_epoch=int(tck.epoch), n=n, holdout=holdout, seed=seed, rows=tuple(rows))
