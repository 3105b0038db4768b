"""Settings of the Part B experiment jobs: one frozen dataclass per job, fields = the config keys it reads.

The sampling jobs read part_b.ddpm.sampler and ddim_eta (difflab.sampler.ddim_eta_of).
The jobs drawing the writeup's DDPM figures (grids, GIFs, guidance grid) read `sample_weights`: raw (the
writeup's) or ema weights of each checkpoint.

Jobs (results/experiments/part_b/<name>/):
    denoiser       B.1 noising figure, training loss, test-set denoising after each kept epoch
    ood            the denoiser off its training noise level vs the best blur and the one-step DDPM
    time_grids     loss and sample grids per evaluation epoch of the time-conditioned DDPM (B.2)
    class_grids    the same for the class-conditioned DDPM (B.4, guidance part_b.ddpm.guidance_scale)
    time_gif       reverse-process frames of the last time-conditioned checkpoint (the only job reading gif_frames)
    class_gif      the same for the class-conditioned model
    cfg            one sample per digit for each guidance scale of part_b.ddpm.cfg_sweep
    time_steps     FID/KID and wall time per (sampler, step count) of the last time-conditioned checkpoint
    class_steps    the same plus class accuracy for the class-conditioned model at part_b.ddpm.guidance_scale
    steps          both models' steps metrics in one table, plot and facts, from their CSVs (no key)
    cfg_tradeoff   FID and class accuracy per guidance scale, from the FID CSVs (reads no config key)
    fid            FID per evaluation epoch, the real-vs-real floor, classifier accuracy, from CSVs (no key)
    ema            FID, KID and class accuracy of raw against EMA weights per evaluation epoch, from CSVs
    models         parameter count, width and training speed of every checkpoint (no key)
"""

from __future__ import annotations

from difflab.settings import job, other

SAMPLE_BATCH = "part_b.ddpm.sample_batch_size"


@job("part_b.denoiser", "part_b.denoiser")
class Denoiser:
    seed: int
    device: str
    noise_levels: list
    ood_num_images: int
    sample_batch_size: int | str = other(SAMPLE_BATCH)


@job("part_b.ood", "part_b.denoiser")
class Ood:
    seed: int
    device: str
    noise_levels: list
    ood_num_images: int
    blur_holdout: int
    blur_sigmas: list
    sample_batch_size: int | str = other(SAMPLE_BATCH)


@job("part_b.time_grids", "part_b.ddpm")
class TimeGrids:
    seed: int
    device: str
    time_grid_samples: int
    sample_batch_size: int | str
    sampler: str
    ddim_eta: float
    sample_weights: str


@job("part_b.class_grids", "part_b.ddpm")
class ClassGrids:
    seed: int
    device: str
    class_grid_per_digit: int
    guidance_scale: float
    sample_batch_size: int | str
    sampler: str
    ddim_eta: float
    sample_weights: str


@job("part_b.time_gif", "part_b.ddpm")
class TimeGif:
    seed: int
    device: str
    time_grid_samples: int
    sample_batch_size: int | str
    gif_frames: int
    sampler: str
    ddim_eta: float
    sample_weights: str


@job("part_b.class_gif", "part_b.ddpm")
class ClassGif:
    seed: int
    device: str
    class_grid_per_digit: int
    guidance_scale: float
    sample_batch_size: int | str
    gif_frames: int
    sampler: str
    ddim_eta: float
    sample_weights: str


@job("part_b.cfg", "part_b.ddpm")
class Cfg:
    seed: int
    device: str
    cfg_sweep: list
    sample_batch_size: int | str
    sampler: str
    ddim_eta: float
    sample_weights: str


@job("part_b.time_steps", "part_b.steps")
class TimeSteps:
    seed: int
    device: str
    step_counts: list
    timestep_spacing: str
    num_images: int
    ddim_eta: float = other("part_b.ddpm.ddim_eta")
    sample_batch_size: int | str = other(SAMPLE_BATCH)
    kid_subset_size: int = other("part_b.fid.kid_subset_size")
    kid_subsets: int = other("part_b.fid.kid_subsets")


@job("part_b.class_steps", "part_b.steps")
class ClassSteps(TimeSteps):
    guidance_scale: float = other("part_b.ddpm.guidance_scale")


@job("part_b.steps", "part_b.steps")
class Steps:
    """Reads only the metric CSVs of time_steps and class_steps (its inputs); no config key."""


@job("part_b.cfg_tradeoff", "part_b.fid")
class CfgTradeoff:
    """Reads only the FID CSVs of the guidance sweep (its inputs); no config key."""


@job("part_b.fid", "part_b.fid")
class Fid:
    """Reads only the FID, floor and classifier CSVs (its inputs); no config key."""


@job("part_b.ema", "part_b.ddpm")
class Ema:
    """Reads the FID CSVs of raw and EMA weights (its inputs) and the decay, for the report's text."""

    ema_decay: float


@job("part_b.models", "part_b")
class Models:
    """Reads only the final checkpoints (its inputs); no config key."""
