"""Settings of the pipeline jobs around the experiments: data, models, samples, metrics and the report.

Also `WORKFLOW_KEYS`: the config keys the Snakefile itself reads to shape the DAG (which epochs exist,
which guidance scales are swept, which mask files are inputs). Every schema key is read by a job or by
the workflow; tests/test_settings.py checks that.
"""

from __future__ import annotations

from difflab.settings import job, other

WORKFLOW_KEYS = (
    "profile",  # the report's banner and the manifest
    "part_b.denoiser.epochs",  # the last epoch of the chain
    "part_b.denoiser.grid_epochs",  # kept checkpoints
    "part_b.ddpm.epochs",
    "part_b.ddpm.eval_epochs",  # kept checkpoints, samples and FID per epoch
    "part_b.ddpm.cfg_sweep",  # one sampling job per guidance scale
    "part_a.backend",  # which checkpoint Part A jobs read
    "part_a.inpaint_masks",  # mask image files are inputs of the inpainting job
)


# --- data ---------------------------------------------------------------------------------------------------


@job("data.mnist", "data")
class Mnist:
    raw_dir: str
    mirror: str


# --- models -------------------------------------------------------------------------------------------------


TRAIN_PRECISION, SAMPLE_PRECISION = "performance.train_precision", "performance.sample_precision"  # difflab.performance
COMPILE, CUDA_GRAPHS = "performance.compile", "performance.cuda_graphs"


@job("models.train_denoiser", "part_b.denoiser")
class TrainDenoiser:
    seed: int
    device: str
    sigma: float
    hidden: int
    batch_size: int
    epochs: int
    lr: float
    train_subset: int = other("data.train_subset")
    train_precision: str = other(TRAIN_PRECISION)
    compile: bool = other(COMPILE)
    cuda_graphs: bool = other(CUDA_GRAPHS)


@job("models.train_time", "part_b.ddpm")
class TrainTime:
    seed: int
    device: str
    num_timesteps: int
    beta_start: float
    beta_end: float
    hidden: int
    batch_size: int
    epochs: int
    lr: float
    lr_decay_total: float
    ema_decay: float  # EMA of the weights, updated every optimizer step (difflab.train.make_ema)
    train_subset: int = other("data.train_subset")
    train_precision: str = other(TRAIN_PRECISION)
    compile: bool = other(COMPILE)
    cuda_graphs: bool = other(CUDA_GRAPHS)


@job("models.train_class", "part_b.ddpm")
class TrainClass(TrainTime):
    """The time model's keys plus the probability of dropping the class condition (CFG training)."""

    p_uncond: float


@job("models.classifier", "part_b.classifier")
class Classifier:
    seed: int
    device: str
    epochs: int
    batch_size: int
    lr: float
    width: int
    train_subset: int = other("data.train_subset")


# --- samples ------------------------------------------------------------------------------------------------


@job("samples.time", "part_b.ddpm")
class SampleTime:
    seed: int
    device: str
    sample_batch_size: int | str  # a number, or "auto" (difflab.performance.sample_batch)
    num_images: int = other("part_b.fid.num_images")
    sampler: str = other("part_b.ddpm.sampler")
    ddim_eta: float = other("part_b.ddpm.ddim_eta")
    sample_precision: str = other(SAMPLE_PRECISION)
    compile: bool = other(COMPILE)


@job("samples.class", "part_b.ddpm")
class SampleClass:
    seed: int
    device: str
    sample_batch_size: int | str  # a number, or "auto" (difflab.performance.sample_batch)
    guidance_scale: float
    num_images: int = other("part_b.fid.num_images")
    sampler: str = other("part_b.ddpm.sampler")
    ddim_eta: float = other("part_b.ddpm.ddim_eta")
    sample_precision: str = other(SAMPLE_PRECISION)
    compile: bool = other(COMPILE)


@job("samples.cfg_sweep", "part_b.ddpm")
class SampleCfgSweep:
    """The guidance scale itself comes from the job's wildcard (one job per entry of part_b.ddpm.cfg_sweep)."""

    seed: int
    device: str
    sample_batch_size: int | str  # a number, or "auto" (difflab.performance.sample_batch)
    cfg_sweep_num_images: int = other("part_b.fid.cfg_sweep_num_images")
    sampler: str = other("part_b.ddpm.sampler")
    ddim_eta: float = other("part_b.ddpm.ddim_eta")
    sample_precision: str = other(SAMPLE_PRECISION)
    compile: bool = other(COMPILE)


# --- metrics ------------------------------------------------------------------------------------------------


@job("metrics.fid", "part_b.fid")
class Fid:
    device: str
    inception: str
    kid_subset_size: int
    kid_subsets: int


@job("metrics.fid_floor", "part_b.fid")
class FidFloor:
    device: str
    inception: str
    kid_subset_size: int
    kid_subsets: int
    real_floor_num_images: int


# --- report -------------------------------------------------------------------------------------------------


@job("report.render", "report")
class Render:
    title: str
