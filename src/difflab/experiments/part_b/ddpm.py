"""Part B.2-B.5 experiments on the trained DDPMs: sample grids per evaluation epoch (`time_grids`, `class_grids`),
the reverse process of the last checkpoint (`time_gif`, `class_gif`) and one sample per digit per guidance
scale (`cfg`). Sampling is Algorithm B.2 / B.4 (difflab.sampling.ddpm_sample). Random draws, in order:
    grids and GIFs: a fresh make_generator(seed, "partb", "grid", kind) per checkpoint: x_{T-1}, then z per step,
                    so every epoch's grid starts from the same noise and the GIF ends on the last epoch's grid;
    cfg:            a fresh make_generator(seed, "partb", "cfg-grid") per guidance scale (the same noise for every gamma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from difflab.experiments.part_b import g, number_list
from difflab.experiments.part_b.checkpoints import DIGITS, as_images, load_unets, loss_curve
from difflab.performance import sample_batch
from difflab.sampler import ddim_eta_of

TITLES = {"time": "time-conditioned DDPM", "class": "class-conditioned DDPM"}


def grid_request(kind: str, settings, device) -> tuple[int, torch.Tensor | None, float | None, int]:
    """(n, labels, guidance, nrow) of a grid: the time model draws `time_grid_samples` in rows of 10; the class
    model `class_grid_per_digit` rows of the digits 0-9 (labels = arange(n) % 10) at `guidance_scale`."""
    if kind == "time":
        n = int(settings.time_grid_samples)
        return n, None, None, math.ceil(n / DIGITS)
    per_digit = int(settings.class_grid_per_digit)
    n = per_digit * DIGITS
    return n, torch.arange(n, device=device) % DIGITS, float(settings.guidance_scale), per_digit


def sample_grid(kind: str, settings, device, seed: int, path: str, model, ckpt, frames: int = 0):
    """ddpm_sample of one checkpoint with the grid's generator. Returns (images (n, 1, 28, 28), frames)."""
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_sample

    n, labels, guidance, _ = grid_request(kind, settings, device)
    generator = make_generator(seed, "partb", "grid", kind, device=device)
    return ddpm_sample(model, ckpt.schedule(), n, generator, device, labels=labels, guidance_scale=guidance,
                       batch_size=sample_batch(settings.sample_batch_size, n, device), frames=frames,
                       ddim_eta=ddim_eta_of(settings.sampler, settings.ddim_eta))


@dataclass(frozen=True)
class GridsResult:
    """samples: (C, n, 1, 28, 28) in [0, 1], order epoch, sample (row-major, `nrow` rows; class model: sample i
    is digit i % 10); epochs: (C,); losses: (S,) per step; loss_epoch_ends, loss_epoch_means: (E,);
    guidance: gamma (NaN for the time model)."""

    kind: str
    samples: np.ndarray
    epochs: np.ndarray
    nrow: int
    losses: np.ndarray
    loss_epoch_ends: np.ndarray
    loss_epoch_means: np.ndarray
    hidden: int
    parameters: int
    num_timesteps: int
    p_uncond: float
    guidance: float
    seed: int
    rows: tuple = ()

    def facts(self) -> dict:
        facts = {
            "hidden": int(self.hidden), "parameters": f"{int(self.parameters):,}", "num_timesteps": int(self.num_timesteps),
            "last_timestep": int(self.num_timesteps) - 1, "first_loss": g(self.losses[0]),
            "final_loss_mean": g(self.loss_epoch_means[-1]), "trained_epochs": int(len(self.loss_epoch_means)),
            "steps": int(len(self.losses)), "epochs": ", ".join(str(int(e)) for e in self.epochs),
            "n": int(self.samples.shape[1]), "seed": int(self.seed),
        }
        if self.kind == "class":
            facts |= {"guidance": g(self.guidance), "per_digit": int(self.nrow), "p_uncond": g(self.p_uncond)}
        return facts


def grids(kind: str, settings, device, checkpoints: list[str]) -> GridsResult:
    """Samples of every kept checkpoint of one DDPM from the same noise, and its training loss."""
    from difflab.models import count_parameters

    loaded = load_unets(checkpoints, device, (kind,), settings.sample_weights)
    last_path, last_model, last = loaded[-1]
    losses, ends, means = loss_curve(last, last_path)
    samples = [as_images(sample_grid(kind, settings, device, settings.seed, path, model, ckpt)[0]) for path, model, ckpt in loaded]
    rows = tuple({"experiment": f"{kind}_grids", "model": kind, "epoch": e + 1, "metric": "train_loss_mean", "value": float(m)}
                 for e, m in enumerate(means))
    _, _, guidance, nrow = grid_request(kind, settings, device)
    return GridsResult(
        kind=kind, samples=np.stack(samples), epochs=np.asarray([c.epoch for _, _, c in loaded]), nrow=nrow, losses=losses,
        loss_epoch_ends=ends, loss_epoch_means=means, hidden=int(last.hidden), parameters=count_parameters(last_model),
        num_timesteps=int(last.num_timesteps), p_uncond=float(last.p_uncond),
        guidance=float("nan") if guidance is None else guidance, seed=settings.seed, rows=rows)


def time_grids(settings, device, checkpoints: list[str]) -> GridsResult:
    return grids("time", settings, device, checkpoints)


def class_grids(settings, device, checkpoints: list[str]) -> GridsResult:
    return grids("class", settings, device, checkpoints)


@dataclass(frozen=True)
class GifResult:
    """frames: (F, n, 1, 28, 28) in [0, 1], order frame (x_{T-1} first, the final sample last), sample as in
    GridsResult; F = gif_frames evenly spaced states (difflab.sampling.frame_indices)."""

    kind: str
    frames: np.ndarray
    nrow: int
    epoch: int
    guidance: float
    seed: int
    rows: tuple = ()

    def facts(self) -> dict:
        facts = {"num_frames": int(self.frames.shape[0]), "epoch": int(self.epoch), "seed": int(self.seed), "n": int(self.frames.shape[1])}
        if self.kind == "class":
            facts["guidance"] = g(self.guidance)
        return facts


def reverse_gif(kind: str, settings, device, checkpoint: str) -> GifResult:
    """`gif_frames` evenly spaced states of the reverse process of `checkpoint` (the grid's samples and noise)."""
    (path, model, ckpt), = load_unets([checkpoint], device, (kind,), settings.sample_weights)
    _, frames = sample_grid(kind, settings, device, settings.seed, path, model, ckpt, frames=int(settings.gif_frames))
    _, _, guidance, nrow = grid_request(kind, settings, device)
    return GifResult(kind=kind, frames=np.stack([f.float().numpy() for f in frames]), nrow=nrow, epoch=int(ckpt.epoch),
                     guidance=float("nan") if guidance is None else guidance, seed=settings.seed)


def time_gif(settings, device, checkpoint: str) -> GifResult:
    return reverse_gif("time", settings, device, checkpoint)


def class_gif(settings, device, checkpoint: str) -> GifResult:
    return reverse_gif("class", settings, device, checkpoint)


@dataclass(frozen=True)
class CfgResult:
    """images: (G*10, 1, 28, 28) in [0, 1], order guidance scale, digit 0-9; guidance: (G,) the scales swept."""

    images: np.ndarray
    guidance: np.ndarray
    epoch: int
    seed: int
    rows: tuple = ()

    def facts(self) -> dict:
        return {"epoch": int(self.epoch), "seed": int(self.seed), "guidance": number_list(self.guidance)}


def cfg_grid(settings, device, checkpoint: str) -> CfgResult:
    """One sample of each digit by Algorithm B.4 for every gamma of part_b.ddpm.cfg_sweep, from the same noise."""
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_sample

    (path, model, ckpt), = load_unets([checkpoint], device, ("class",), settings.sample_weights)
    sweep = [float(x) for x in settings.cfg_sweep]
    labels = torch.arange(DIGITS, device=device)
    schedule = ckpt.schedule()
    rows = []
    for gamma in sweep:
        generator = make_generator(settings.seed, "partb", "cfg-grid", device=device)  # the same noise for every gamma
        rows.append(as_images(ddpm_sample(model, schedule, DIGITS, generator, device, labels=labels, guidance_scale=gamma,
                                          batch_size=sample_batch(settings.sample_batch_size, DIGITS, device),
                                          ddim_eta=ddim_eta_of(settings.sampler, settings.ddim_eta))[0]))
    return CfgResult(images=np.concatenate(rows), guidance=np.asarray(sweep), epoch=int(ckpt.epoch), seed=settings.seed)
