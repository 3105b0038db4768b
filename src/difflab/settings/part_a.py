"""Settings of the Part A jobs (experiments over a Denoiser backend), one frozen dataclass per job.

Job `part_a.<experiment>` reads exactly the fields of its class: config keys `part_a.<field>` plus the
top-level `seed` and `device`. Every job reads `backend` (which Denoiser to load) and `batch_size` (images
per model forward pass). Only the experiments that guide with classifier-free guidance hold `cfg_scale`, so a
change of it reruns those and nothing else. Values arrive as JSON types: lists stay lists, pairs are
two-item lists, masks are [row0, row1, col0, col1] lists or file paths. The chains from pure noise (sampling,
samples, cfg, anagrams, hybrids, illusions) read `timestep_spacing`; every job that runs the reverse loop reads
`sampler` and `ddim_eta` (DDPM posterior steps or DDIM, difflab.sampler); SDEdit, inpainting and the denoisers start
from a noised image on the spec's strided list and do not.
"""

from __future__ import annotations

import dataclasses

from difflab.settings import job, other


@dataclasses.dataclass(frozen=True)
class _Job:
    """Fields every Part A job reads."""

    seed: int
    device: str
    backend: str
    batch_size: int


@dataclasses.dataclass(frozen=True)
class _Chain(_Job):
    """Fields of the jobs that run the reverse loop: which step (difflab.sampler.ddim_eta_of)."""

    sampler: str
    ddim_eta: float


@job("part_a.sampling", "part_a")
class Sampling(_Chain):
    sample_prompts: list
    sample_step_counts: list
    num_samples: int
    cfg_scale: float
    timestep_spacing: str


@job("part_a.forward", "part_a")
class Forward(_Job):
    test_images: list
    forward_fractions: list


@job("part_a.blur", "part_a")
class Blur(_Job):
    test_images: list
    forward_fractions: list
    blur_sigmas: list
    benchmark_num_images: int  # training images that choose the blur sigma


@job("part_a.one_step", "part_a")
class OneStep(_Job):
    test_images: list
    forward_fractions: list


@job("part_a.iterative", "part_a")
class Iterative(_Chain):
    test_images: list
    stride: int
    i_start: int
    blur_sigmas: list
    benchmark_num_images: int


@job("part_a.benchmark", "part_a")
class Benchmark(_Chain):
    forward_fractions: list
    stride: int
    blur_sigmas: list
    benchmark_num_images: int


@job("part_a.samples", "part_a")
class Samples(_Chain):
    num_samples: int
    stride: int
    timestep_spacing: str


@job("part_a.cfg", "part_a")
class Cfg(_Chain):
    num_samples: int
    stride: int
    cfg_scale: float
    timestep_spacing: str


@job("part_a.spacing", "part_a")
class Spacing(_Chain):
    """Leading against trailing timesteps for chains from pure noise: class accuracy and FID of samples."""

    sample_step_counts: list
    spacing_num_images: int
    timestep_spacing: str
    cfg_scale: float


@job("part_a.sdedit", "part_a")
class Sdedit(_Chain):
    test_images: list
    sdedit_i_starts: list
    stride: int
    cfg_scale: float


@job("part_a.sdedit_inputs", "part_a")
class SdeditInputs(_Chain):
    hand_drawn_digits: list
    web_digits: list
    images_dir: str
    sdedit_i_starts: list
    stride: int
    cfg_scale: float


@job("part_a.inpaint", "part_a")
class Inpaint(_Chain):
    test_images: list
    inpaint_masks: list
    num_samples: int
    stride: int
    cfg_scale: float


@job("part_a.img2img", "part_a")
class Img2img(_Chain):
    test_images: list
    img2img_prompts: list
    sdedit_i_starts: list
    stride: int
    cfg_scale: float


@job("part_a.anagrams", "part_a")
class Anagrams(_Chain):
    anagrams: list
    anagram_flip: str
    num_samples: int
    stride: int
    cfg_scale: float
    timestep_spacing: str


@job("part_a.hybrids", "part_a")
class Hybrids(_Chain):
    hybrids: list
    hybrid_kernel_size: int
    hybrid_sigma: float
    hybrid_reference_size: int
    hybrid_sigmas: list  # with hybrid_sigma_choice 'best': the sweep's sigmas, to read its choice
    hybrid_sigma_choice: str | float
    num_samples: int
    stride: int
    cfg_scale: float
    timestep_spacing: str


@job("part_a.hybrid_sweep", "part_a")
class HybridSweep(_Chain):
    """1.9's low-pass sigma against hybrid success read by the classifier (the sigma the 1.9 figures use)."""

    hybrids: list
    hybrid_kernel_size: int
    hybrid_sigma: float
    hybrid_reference_size: int
    hybrid_sigmas: list
    hybrid_sigma_choice: str | float
    illusion_num_seeds: int
    stride: int
    cfg_scale: float
    timestep_spacing: str


@job("part_a.illusions", "part_a")
class Illusions(HybridSweep):
    """The hybrid sweep's keys (its hybrids are scored at the chosen sigma) plus the anagrams'."""

    anagrams: list
    anagram_flip: str


# --- the DeepFloyd IF backend (part_a.backend: deepfloyd) ----------------------------------------------------


@job("models.deepfloyd_embeds", "part_a.deepfloyd")
class DeepfloydEmbeds:
    """T5 embeddings of every prompt the config uses (the job runs only when prompt_embeds is "")."""

    device: str
    model_id: str
    model_dir: str
    unconditional_prompt: str
    null_prompt: str
    sample_prompts: list = other("part_a.sample_prompts")
    img2img_prompts: list = other("part_a.img2img_prompts")
    anagrams: list = other("part_a.anagrams")
    hybrids: list = other("part_a.hybrids")


@job("models.deepfloyd_backend", "part_a.deepfloyd")
class DeepfloydBackend:
    """What every Part A job on this backend loads: results/models/deepfloyd/backend.json (the backend's 'checkpoint'),
    so a change of any of these keys reruns the Part A jobs, and nothing else does."""

    model_id: str
    model_dir: str
    prompt_embeds: str
    cpu_offload: bool
    unconditional_prompt: str
    null_prompt: str
    photos: list
    photo_masks: list
    stage_2: bool
    stage_2_id: str
    stage_2_dir: str
    stage_2_steps: int
