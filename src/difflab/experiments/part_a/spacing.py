"""Leading vs trailing timestep spacing for sampling from pure noise, measured by class accuracy and FID.

A chain from pure noise starts at the first timestep of its list. The spec's strided ("leading") list starts at the
largest multiple of the stride below T, so with T = 300 and 10 steps the model is told at t = 270 that
sqrt(abar) = 0.29 of the signal remains while it is given pure noise (t = 299: 0.22). "Trailing" spacing starts at
T - 1 (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed"; diffusers
`timestep_spacing`). `measure_spacing` samples both from the same noise and scores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.experiments.part_a.context import Context, Result
from difflab.metrics.extractors import extractor_feature_dim, fid_bias_note
from difflab.metrics.scores import warn_if_fid_biased
from difflab.runtime import make_generator

EXPERIMENT = "part_a_spacing"
METRICS = ("class_accuracy", "fid", "kid", "kid_std")


def spacing_parameter(spacing: str, steps: int) -> str:
    """The metric rows' parameter, e.g. "spacing=trailing,steps=10"."""
    return f"spacing={spacing},steps={steps}"


def to_unit_range(x: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Backend images in [lo, hi] mapped to [0, 1] (what the MNIST classifier reads): (x - lo) / (hi - lo), clamped."""
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


@torch.no_grad()
def measure_spacing(
    denoiser,
    classifier: torch.nn.Module,
    real_images: Tensor,
    step_counts: list[int],
    num_samples: int,
    spacings: list[str],
    cfg_scale: float,
    seed: int,
    ddim_eta: float | None = None,
) -> list[dict]:
    """Class accuracy and FID of CFG samples from pure noise for every (spacing, step count).

    denoiser: a `Denoiser` whose prompts "a 0" ... "a 9" name digits (the MNIST backend); images of shape
    `denoiser.image_shape` in `denoiser.value_range`.
    classifier: the Part B MNIST classifier (`difflab.metrics.classifier.MnistClassifier`), read on [0, 1] images.
    real_images: (M, 1, 28, 28) float in [0, 1], M >= num_samples (e.g. MNIST test); the first num_samples are the
    FID reference, so generated and real sets have equal n.
    step_counts: numbers of model calls as in Part 0, each turned into timesteps by
    `denoising_timesteps(T, stride_for_steps(T, n), spacing=s)`: both spacings get the same number of calls
    (T = 300: 10 -> leading 270, ..., 0 and trailing 299, ..., 29); the rows' "steps" is that number of calls,
    len(timesteps) - 1, which can be below the request (T = 100, 30 -> 25). spacings: from `algorithms.SPACINGS`.
    Sampling: digits d_k ~ U{0, ..., 9} and x_T ~ N(0, I) are drawn once (generator seed/"part_a"/"spacing") and
    shared by every (spacing, steps); the per-step noise z comes from seed/"part_a"/"spacing"/steps, so the two
    spacings at equal steps share it too. Each sample: `iterative_denoise` from x_T with classifier-free guidance
    at scale cfg_scale (eq A.4) towards "a d_k" (DDIM steps with ddim_eta unless it is None), then mapped to [0, 1].
    Metrics (rows in the tidy schema of difflab.metrics.tables):
        class_accuracy = (1/n) sum_k [argmax_c classifier(x_k)_c = d_k]
        fid = Frechet distance of classifier penultimate features, real_images[:n] vs samples (`fid.fid_score`)
        kid, kid_std = Kernel Inception Distance on the same features and its spread over subsets (`fid.kid_score`)
    with extractor `classifier_extractor_name(classifier.width)`, model "class", epoch `denoiser.epoch` (or None).
    Raises DifflabError for num_samples < 2, too few or misshapen real images, an empty or unknown spacing list,
    or step counts outside 1..T.
    """
    from difflab.metrics.classifier import accuracy, check_images
    from difflab.metrics.fid import ClassifierFeatures, classifier_extractor_name, fid_score, kid_score

    T = int(denoiser.alphas_cumprod.shape[0])
    if num_samples < 2:
        raise DifflabError(f"spacing measurement: {num_samples} samples; FID needs at least 2")
    check_images(real_images, "spacing measurement: real images")
    if real_images.shape[0] < num_samples:
        raise DifflabError(f"spacing measurement: {real_images.shape[0]} real images for {num_samples} samples; "
                           "FID compares equal n")
    if not spacings or any(s not in A.SPACINGS for s in spacings):
        raise DifflabError(f"spacing measurement: spacings {spacings!r}; expected a non-empty list from {A.SPACINGS}")
    if not step_counts or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= T for n in step_counts):
        raise DifflabError(f"spacing measurement: step counts {step_counts!r}; expected integers in 1..{T}")

    g = make_generator(seed, "part_a", "spacing", device=denoiser.device)
    digits = torch.randint(0, 10, (num_samples,), generator=g, device=denoiser.device)
    x_T = A.pure_noise(denoiser, num_samples, g)
    cond = torch.cat([denoiser.encode(f"a {d}") for d in range(10)])[digits]
    real = real_images[:num_samples]
    features = ClassifierFeatures(classifier)
    extractor = classifier_extractor_name(int(classifier.width))
    rows = []
    for steps in step_counts:
        stride = A.stride_for_steps(T, steps)
        for spacing in spacings:
            ts = A.denoising_timesteps(T, stride, spacing=spacing)
            z_stream = make_generator(seed, "part_a", "spacing", steps, device=denoiser.device)
            x = A.iterative_denoise(denoiser, x_T, 0, ts, cond, z_stream, cfg_scale, desc=f"{spacing}, {steps} steps",
                                    ddim_eta=ddim_eta)
            x = to_unit_range(x, denoiser.value_range).float().cpu()
            base = {"experiment": EXPERIMENT, "model": "class", "epoch": getattr(denoiser, "epoch", None),
                    "parameter": spacing_parameter(spacing, len(ts) - 1), "n": num_samples, "extractor": extractor}
            rows.append({**base, "metric": "class_accuracy", "value": accuracy(classifier, x, digits.cpu())})
            rows.append({**base, "metric": "fid", "value": fid_score(real, x, features)})
            kid, kid_std = kid_score(real, x, features)
            rows += [{**base, "metric": "kid", "value": kid}, {**base, "metric": "kid_std", "value": kid_std}]
    return rows


@dataclass(frozen=True)
class SpacingResult(Result):
    """One entry per (guidance scale, step count, spacing), in that nesting order: guidance: (R,) gamma (0 = the
    unguided estimate eps_u); steps: (R,) model calls; spacing: (R,) "leading" | "trailing"; class_accuracy, fid:
    (R,) on n samples each, kid and kid_std (R,) beside fid on the same features (the same digits and x_T for every
    entry; the same z for equal steps)."""

    guidance: np.ndarray
    steps: np.ndarray
    spacing: np.ndarray
    class_accuracy: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray


def better_spacing(fid: np.ndarray, spacing: np.ndarray, chosen: np.ndarray) -> str:
    """The spacing with the lower mean FID over the entries selected by the boolean mask `chosen`."""
    means = {name: float(fid[chosen & (spacing == name)].mean()) for name in A.SPACINGS}
    return min(means, key=means.get)


def spacing(ctx: Context, s) -> SpacingResult:
    """Leading against trailing spacing (measure_spacing) at the step counts of Part 0, for CFG samples at gamma =
    part_a.cfg_scale and for unguided ones (gamma = 0), n = part_a.spacing_num_images against as many MNIST test
    images. Random draws: as measure_spacing, with the same seed for both guidance scales. On backends without the
    MNIST classifier (deepfloyd) nothing is sampled: not_measured."""
    if not ctx.is_mnist:
        return not_measured(ctx, s)
    real, _ = ctx.split("test")
    rows = []
    for gamma in (0.0, float(s.cfg_scale)):
        for row in measure_spacing(ctx.den, ctx.classifier(), real, list(s.sample_step_counts), s.spacing_num_images,
                                   list(A.SPACINGS), gamma, ctx.seed, ctx.ddim_eta):
            rows.append({**row, "parameter": f"{row['parameter']},guidance={gamma:g}"})
    fid_rows = [r for r in rows if r["metric"] == "fid"]
    warn_if_fid_biased(s.spacing_num_images, extractor_feature_dim(fid_rows[0]["extractor"]))
    parsed = [dict(part.split("=") for part in r["parameter"].split(",")) for r in fid_rows]
    guidance = np.asarray([float(p["guidance"]) for p in parsed])
    steps = np.asarray([int(p["steps"]) for p in parsed])
    spacings = np.asarray([p["spacing"] for p in parsed])
    fid = np.asarray([r["value"] for r in fid_rows])
    accuracy, kid, kid_std = (np.asarray([r["value"] for r in rows if r["metric"] == metric])
                              for metric in ("class_accuracy", "kid", "kid_std"))
    guided = guidance == float(s.cfg_scale)
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "n": s.spacing_num_images, "cfg_scale": f"{s.cfg_scale:g}",
             "steps": ", ".join(str(n) for n in sorted(set(steps.tolist()))), "default": s.timestep_spacing,
             "better_guided": better_spacing(fid, spacings, guided), "better_unguided": better_spacing(fid, spacings, ~guided),
             "leading_start": A.denoising_timesteps(ctx.T, A.stride_for_steps(ctx.T, int(steps.min())))[0],
             "trailing_start": A.denoising_timesteps(ctx.T, A.stride_for_steps(ctx.T, int(steps.min())), spacing="trailing")[0],
             "fid_bias_note": fid_bias_note(s.spacing_num_images, fid_rows[0]["extractor"])}
    return SpacingResult(rows, facts, guidance, steps, spacings, accuracy, fid, kid, kid_std)


def not_measured(ctx: Context, s) -> SpacingResult:
    """The spacing result on a backend whose images no MNIST classifier reads: every (guidance, steps, spacing)
    entry of `spacing` with NaN class accuracy, FID and KID (shown as n/a), the metric rows likewise, facts n/a."""
    entries = [(gamma, len(A.denoising_timesteps(ctx.T, A.stride_for_steps(ctx.T, n), spacing=name)) - 1, name)
               for gamma in (0.0, float(s.cfg_scale)) for n in s.sample_step_counts for name in A.SPACINGS]
    rows = [ctx.row(f"{spacing_parameter(name, n)},guidance={gamma:g}", metric, float("nan"), s.spacing_num_images)
            for gamma, n, name in entries for metric in METRICS]
    nan = np.full(len(entries), np.nan)
    steps = [n for _, n, _ in entries]
    n_min = min(s.sample_step_counts)
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "n": s.spacing_num_images, "cfg_scale": f"{s.cfg_scale:g}",
             "steps": ", ".join(str(n) for n in sorted(set(steps))), "default": s.timestep_spacing,
             "better_guided": "n/a", "better_unguided": "n/a",
             "leading_start": A.denoising_timesteps(ctx.T, A.stride_for_steps(ctx.T, n_min))[0],
             "trailing_start": A.denoising_timesteps(ctx.T, A.stride_for_steps(ctx.T, n_min), spacing="trailing")[0],
             "fid_bias_note": "Not measured on this backend: class accuracy, FID and KID need the MNIST classifier."}
    return SpacingResult(rows, facts, np.asarray([g for g, _, _ in entries]), np.asarray(steps),
                         np.asarray([name for _, _, name in entries]), nan, nan.copy(), nan.copy(), nan.copy())
