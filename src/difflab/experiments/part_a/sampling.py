"""Part A 0, 1.5 and 1.6: sampling from pure noise (chains from x_T), without and with classifier-free guidance,
each returning a Result. The Part B MNIST classifier reads what the samples show."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.edit import algorithms as A
from difflab.experiments.part_a.context import Context, Result, listed, percent, quoted


@dataclass(frozen=True)
class SamplingResult(Result):
    """images: (N*P*S, C, H, W) order step count, prompt, sample (all step counts start from the same x_T);
    prompts: (P,); steps: (N,) the denoising steps actually run per step count; agreement: (N,) share of the
    P*S samples the classifier reads as the prompted digit (NaN without an MNIST classifier); upsampled:
    (N*P*S, C, 4H, 4W) the same images after stage II (DeepFloyd, part_a.deepfloyd.stage_2), else (0,)."""

    images: Tensor
    prompts: list
    steps: list
    agreement: list
    upsampled: Tensor


def sampling(ctx: Context, s) -> SamplingResult:
    """0: CFG samples (gamma = part_a.cfg_scale) for each prompt at each of part_a.sample_step_counts
    (timestep stride A.stride_for_steps). Random draws: ctx.generator('noise') for x_T, then
    ctx.generator('steps', n) for the steps' z at step count n."""
    prompts, S = s.sample_prompts, s.num_samples
    cond = ctx.encode("sample_prompts", prompts).repeat_interleave(S, dim=0)
    x_T = A.pure_noise(ctx.den, len(prompts) * S, ctx.generator("noise"))
    rows, used = [], []
    for n in s.sample_step_counts:
        ts = ctx.timesteps(A.stride_for_steps(ctx.T, n), s.timestep_spacing)
        used.append(len(ts) - 1)
        rows.append(A.iterative_denoise(ctx.den, x_T, 0, ts, cond, ctx.generator("steps", n), s.cfg_scale,
                                        desc=f"sampling, {n} steps", ddim_eta=ctx.ddim_eta))
    images = torch.cat(rows)
    pred, _ = ctx.read_digits(images)
    if ctx.is_mnist:  # the MNIST backend's conditions are one-hot digits
        intended = torch.cat([cond.argmax(dim=1)] * len(used))
        hits = (pred == intended.to(pred.device)).float().reshape(len(used), len(prompts) * S).mean(dim=1).tolist()
    else:
        hits = [float("nan")] * len(used)
    upsample = getattr(ctx.den, "upsample", None)  # stage II (DeepFloyd): None when off
    upsampled = upsample(ctx.clamp(images), torch.cat([cond] * len(used)), ctx.generator("stage_2")) if upsample else None
    metrics = [ctx.row(f"steps={u}", "classifier_agreement", r, len(prompts) * S) for u, r in zip(used, hits)]
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "cfg_scale": f"{s.cfg_scale:g}", "prompts": quoted(prompts),
             "spacing": s.timestep_spacing,
             "steps": " and ".join(map(str, used)), "num_samples": S,
             "agreement": ", ".join(f"{percent(r)} ({u} steps)" for u, r in zip(used, hits)),
             "stage_2": "no" if upsampled is None else f"yes, to {upsampled.shape[-1]} px"}
    return SamplingResult(metrics, facts, ctx.clamp(images), list(prompts), used, hits,
                          torch.empty(0) if upsampled is None else upsampled)


@dataclass(frozen=True)
class SamplesResult(Result):
    """images: (S, 1, 28, 28); predicted: (S,) the digit the classifier reads; confidence: (S,) its probability."""

    images: Tensor
    predicted: Tensor
    confidence: Tensor


def samples(ctx: Context, s) -> SamplesResult:
    """1.5: iterative denoising from pure noise (i_start = 0) under the null condition, no guidance.
    Random draws: ctx.generator(): x_T, then one z per step."""
    S = s.num_samples
    g = ctx.generator()
    cond = ctx.den.null_condition(S) if ctx.is_mnist else ctx.content_conditions(None, S)  # "a high quality photo"
    x = A.iterative_denoise(ctx.den, A.pure_noise(ctx.den, S, g), 0, ctx.timesteps(s.stride, s.timestep_spacing), cond,
                            g, desc="samples", ddim_eta=ctx.ddim_eta)
    pred, conf = ctx.read_digits(x)
    metrics = [ctx.row("", "classifier_confidence_mean", float(conf.mean()), S)]
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "stride": s.stride, "num_samples": S, "spacing": s.timestep_spacing, "read_as": listed(pred.tolist()),
             "confidence": f"{float(conf.mean()):.2f}"}
    return SamplesResult(metrics, facts, ctx.clamp(x), pred, conf)


@dataclass(frozen=True)
class CfgResult(Result):
    """images: (S, C, H, W), sample i guided towards prompts[i]; digits: (S,) drawn uniformly from 0-9 on the MNIST
    backend (-1 on others, where every sample is guided towards the unconditional prompt, spec A.1.6); prompts: (S,)."""

    images: Tensor
    digits: Tensor
    prompts: list


def cfg(ctx: Context, s) -> CfgResult:
    """1.6: CFG samples eps = eps_u + gamma (eps_c - eps_u), each towards a uniformly drawn digit (MNIST) or towards
    "a high quality photo" (other backends, as the writeup). Random draws: ctx.generator(): the S digits (MNIST only),
    x_T, then one z per step."""
    S = s.num_samples
    g = ctx.generator()
    if ctx.is_mnist:
        digits = torch.randint(0, 10, (S,), generator=g, device=ctx.den.device)
        cond, prompts = ctx.digit_conditions(digits.tolist()), [f"a {d}" for d in digits.tolist()]
    else:
        digits = torch.full((S,), -1, dtype=torch.long)
        cond, prompts = ctx.content_conditions(None, S), [ctx.den.spec["unconditional_prompt"]] * S
    x = A.iterative_denoise(ctx.den, A.pure_noise(ctx.den, S, g), 0, ctx.timesteps(s.stride, s.timestep_spacing), cond, g, s.cfg_scale,
                            desc="CFG samples", ddim_eta=ctx.ddim_eta)
    pred, _ = ctx.read_digits(x)
    rate = float((pred == digits.to(pred.device)).float().mean()) if ctx.is_mnist else float("nan")
    metrics = [ctx.row(f"guidance={s.cfg_scale:g}", "classifier_agreement", rate, S)]
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "cfg_scale": f"{s.cfg_scale:g}", "num_samples": S,
             "digits": listed(digits.tolist()) if ctx.is_mnist else "n/a", "prompts": quoted(dict.fromkeys(prompts)),
             "agreement": percent(rate)}
    return CfgResult(metrics, facts, ctx.clamp(x), digits, prompts)
