"""Part A 1.1-1.4 and the denoiser benchmark: the forward process, Gaussian-blur, one-step and iterative denoising
of MNIST test images, each returning a Result (arrays, metric rows, facts). Equations: report/sections/part_a.qmd."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difflab.edit import algorithms as A
from difflab.experiments.part_a.context import (
    Context,
    Result,
    best_blur_sigmas,
    listed,
    mean_psnr,
    quality,
)

PREVIEW_EVERY = 5  # 1.4 shows every 5th loop of the iterative denoiser
METHODS = ("blur", "one_step", "iterative")
METHOD_NAMES = {"blur": "Gaussian blur", "one_step": "one-step", "iterative": "iterative"}
MEASURES = ("mse", "psnr", "ssim")


def _base_facts(ctx: Context, indices: list[int], levels: list[int]) -> dict:
    return {"seed": ctx.seed, "num_timesteps": ctx.T, "test_images": listed(indices), "levels": listed(levels)}


@dataclass(frozen=True)
class ForwardResult(Result):
    """originals: (K, 1, 28, 28) clean test images; noisy: (L*K, 1, 28, 28) order level, image, clamped to the
    value range; levels: (L,) timesteps t; indices: (K,) MNIST test indices."""

    originals: Tensor
    noisy: Tensor
    levels: list
    indices: list


def forward(ctx: Context, s) -> ForwardResult:
    """1.1: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at t = round(fraction * T).
    Random draws: one stream ctx.generator(), one eps per level in level order."""
    x0, _ = ctx.test_images(s.test_images)
    levels = ctx.levels(s.forward_fractions)
    g = ctx.generator()
    schedule = A.schedule_of(ctx.den)
    noisy = [A.forward(ctx.den, x0, t, g) for t in levels]
    abar = [float(schedule.abar(t)) for t in levels]
    rows = []
    for t, a, x_t in zip(levels, abar, noisy):
        rows.append(ctx.row(f"t={t}", "abar", a))
        rows.append(ctx.row(f"t={t}", "psnr_mean", mean_psnr(ctx, x_t, x0), len(s.test_images)))
    facts = {**_base_facts(ctx, s.test_images, levels),
             "signal_weights": listed([a ** 0.5 for a in abar], "{:.2f}"),
             "noise_stds": listed([(1 - a) ** 0.5 for a in abar], "{:.2f}")}
    return ForwardResult(rows, facts, x0, ctx.clamp(torch.cat(noisy)), levels, list(s.test_images))


@dataclass(frozen=True)
class BlurResult(Result):
    """noisy, blurred: (L*K, 1, 28, 28) order level, image; sigmas: (L,) the chosen blur sigma per level;
    levels: (L,); indices: (K,)."""

    noisy: Tensor
    blurred: Tensor
    sigmas: list
    levels: list
    indices: list


def blur(ctx: Context, s) -> BlurResult:
    """1.2: x0_hat = G_sigma * (x_t / sqrt(abar_t)), sigma per level from config part_a.blur_sigmas (best on training
    images, context.best_blur_sigmas). Random draws: the selection's own streams, then ctx.generator() per level."""
    x0, _ = ctx.test_images(s.test_images)
    levels = ctx.levels(s.forward_fractions)
    best = best_blur_sigmas(ctx, levels, s.blur_sigmas, s.benchmark_num_images)
    g = ctx.generator()
    schedule = A.schedule_of(ctx.den)
    noisy, blurred, psnr, rows = [], [], [], []
    for t in levels:
        x_t = A.forward(ctx.den, x0, t, g)
        x_hat = A.blur_denoise(x_t, schedule.abar(t), best[t])
        noisy.append(x_t)
        blurred.append(x_hat)
        psnr.append(mean_psnr(ctx, x_hat, x0))
        rows.append(ctx.row(f"t={t}", "blur_sigma", best[t]))
        rows.append(ctx.row(f"t={t}", "blur_psnr_mean", psnr[-1], len(s.test_images)))
    facts = {**_base_facts(ctx, s.test_images, levels), "candidates": listed(s.blur_sigmas, "{:g}"),
             "sigmas": listed([best[t] for t in levels], "{:g}"), "psnr": listed(psnr, "{:.1f}")}
    return BlurResult(rows, facts, ctx.clamp(torch.cat(noisy)), ctx.clamp(torch.cat(blurred)),
                      [best[t] for t in levels], levels, list(s.test_images))


@dataclass(frozen=True)
class OneStepResult(Result):
    """originals: (K, 1, 28, 28); noisy, estimates: (L*K, 1, 28, 28) order level, image; levels: (L,); indices: (K,)."""

    originals: Tensor
    noisy: Tensor
    estimates: Tensor
    levels: list
    indices: list


def one_step(ctx: Context, s) -> OneStepResult:
    """1.3: x0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t, null)) / sqrt(abar_t).
    Random draws: ctx.generator(), one eps per level."""
    x0, _ = ctx.test_images(s.test_images)
    levels = ctx.levels(s.forward_fractions)
    g = ctx.generator()
    null = ctx.den.null_condition(len(s.test_images))
    noisy, estimates, psnr, rows = [], [], [], []
    for t in levels:
        x_t = A.forward(ctx.den, x0, t, g)
        x0_hat = A.one_step_denoise(ctx.den, x_t, t, null)
        noisy.append(x_t)
        estimates.append(x0_hat)
        psnr.append(mean_psnr(ctx, x0_hat, x0))
        rows.append(ctx.row(f"t={t}", "one_step_psnr_mean", psnr[-1], len(s.test_images)))
    facts = {**_base_facts(ctx, s.test_images, levels), "psnr": listed(psnr, "{:.1f}")}
    return OneStepResult(rows, facts, x0, ctx.clamp(torch.cat(noisy)), ctx.clamp(torch.cat(estimates)), levels,
                         list(s.test_images))


@dataclass(frozen=True)
class IterativeResult(Result):
    """steps: (P*K, 1, 28, 28) order shown step, image: x_t at t = shown_t[p] (every PREVIEW_EVERY-th loop from
    i_start); originals, noisy, iterative, one_step, blurred: (K, 1, 28, 28); shown_t: (P,); indices: (K,)."""

    steps: Tensor
    shown_t: list
    originals: Tensor
    noisy: Tensor
    iterative: Tensor
    one_step: Tensor
    blurred: Tensor
    indices: list


def iterative(ctx: Context, s) -> IterativeResult:
    """1.4: strided DDPM posterior steps from t = timesteps[i_start] to 0 (A.iterative_denoise), next to one-step
    and blur from the same x_t. Random draws: ctx.generator(): the forward eps, then one z per step."""
    x0, _ = ctx.test_images(s.test_images)
    ts = ctx.timesteps(s.stride)
    t0 = ts[s.i_start]
    sigma = best_blur_sigmas(ctx, [t0], s.blur_sigmas, s.benchmark_num_images)[t0]
    g = ctx.generator()
    null = ctx.den.null_condition(len(s.test_images))
    x_t = A.forward(ctx.den, x0, t0, g)
    shown, shown_t = [x_t], [t0]

    def keep(i: int, t: int, x: Tensor) -> None:
        if (i - s.i_start) % PREVIEW_EVERY == 0 and t >= 0:
            shown.append(x)
            shown_t.append(t)

    final = A.iterative_denoise(ctx.den, x_t, s.i_start, ts, null, g, callback=keep, desc="iterative denoising",
                                ddim_eta=ctx.ddim_eta)
    one = A.one_step_denoise(ctx.den, x_t, t0, null)
    blurred = A.blur_denoise(x_t, A.schedule_of(ctx.den).abar(t0), sigma)
    outputs = {"iterative": final, "one_step": one, "blur": blurred}
    psnr = {m: mean_psnr(ctx, x, x0) for m, x in outputs.items()}
    rows = [ctx.row(f"t={t0}", f"{m}_psnr_mean", v, len(s.test_images)) for m, v in psnr.items()]
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "test_images": listed(s.test_images), "i_start": s.i_start, "t_start": t0,
             "stride": ts[0] - ts[1] if len(ts) > 2 else 1, "first_timesteps": f"{ts[0]}, {ts[1]}",
             "preview_every": PREVIEW_EVERY, "blur_sigma": f"{sigma:g}",
             **{f"{m}_psnr": f"{v:.1f}" for m, v in psnr.items()}}
    return IterativeResult(rows, facts, ctx.clamp(torch.cat(shown)), shown_t, x0, ctx.clamp(x_t), ctx.clamp(final),
                           ctx.clamp(one), ctx.clamp(blurred), list(s.test_images))


@dataclass(frozen=True)
class BenchmarkResult(Result):
    """mean, std: (3, L, 3) indexed [method, level, measure], methods METHODS (blur, one_step, iterative), measures
    MEASURES (mse, psnr in dB, ssim), over the first n test images; levels: (L,); sigmas: (L,) the blur sigma used."""

    mean: np.ndarray
    std: np.ndarray
    levels: list
    sigmas: list
    methods: list
    measures: list


def benchmark(ctx: Context, s) -> BenchmarkResult:
    """MSE / PSNR / SSIM (mean and sample std over images) of blur, one-step and iterative denoising (from exactly t,
    stride part_a.stride) on the first part_a.benchmark_num_images MNIST test images (other backends: at most that
    many of their photos), outputs clamped to the backend's value range.
    Random draws: per level ctx.generator('level', t): the forward eps, then the iterative steps' z."""
    from difflab import DifflabError
    from difflab.metrics.image_quality import summarize

    n = s.benchmark_num_images
    test, _ = ctx.split("test")
    if not ctx.is_mnist:  # other backends: their few photos (Context.photos) are the test set
        n = min(n, len(test))
    if n > len(test):
        raise DifflabError(f"config key 'part_a.benchmark_num_images' is {n}; expected at most the {len(test)} test "
                           f"images in {ctx.data}")
    x0 = test[:n]
    levels = ctx.levels(s.forward_fractions)
    best = best_blur_sigmas(ctx, levels, s.blur_sigmas, n)
    schedule = A.schedule_of(ctx.den)
    null = ctx.den.null_condition(n)
    mean = np.zeros((len(METHODS), len(levels), len(MEASURES)))
    std = np.zeros_like(mean)
    rows = []
    for li, t in enumerate(levels):
        g = ctx.generator("level", t)
        x_t = A.forward(ctx.den, x0, t, g)
        outputs = {
            "blur": A.blur_denoise(x_t, schedule.abar(t), best[t]),
            "one_step": A.one_step_denoise(ctx.den, x_t, t, null),
            "iterative": A.iterative_denoise(ctx.den, x_t, 0, A.denoising_timesteps(ctx.T, s.stride, start=t), null, g,
                                             desc=f"benchmark t={t}", ddim_eta=ctx.ddim_eta),
        }
        for mi, method in enumerate(METHODS):
            scores = quality(ctx.clamp(outputs[method]), x0, ctx.den.value_range, ssim=True)
            for ki, k in enumerate(MEASURES):
                mean[mi, li, ki], std[mi, li, ki] = summarize(scores[k])
                rows.append(ctx.row(f"t={t}", f"{method}_{k}_mean", mean[mi, li, ki], n))
                rows.append(ctx.row(f"t={t}", f"{method}_{k}_std", std[mi, li, ki], n))
    hi = len(levels) - 1
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "n": n, "stride": s.stride, "t_high": levels[hi],
             "best_psnr_method": METHOD_NAMES[METHODS[int(np.argmax(mean[:, hi, 1]))]],
             "best_ssim_method": METHOD_NAMES[METHODS[int(np.argmax(mean[:, hi, 2]))]]}
    for mi, method in enumerate(METHODS):
        facts[f"{method}_psnr"] = f"{mean[mi, hi, 1]:.2f}"
        facts[f"{method}_ssim"] = f"{mean[mi, hi, 2]:.3f}"
    return BenchmarkResult(rows, facts, mean, std, levels, [best[t] for t in levels], list(METHODS), list(MEASURES))
