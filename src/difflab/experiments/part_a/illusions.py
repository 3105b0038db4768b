"""Part A 1.8-1.9: visual anagrams and hybrid images, and their success rates as read by the Part B MNIST
classifier over many seeds, each returning a Result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from difflab.edit import algorithms as A
from difflab.edit import views as V
from difflab.experiments.part_a.context import Context, Result, percent

VIEW_WORDS = {"vertical": "a vertical flip", "rotate180": "a 180° rotation"}
FLIP_WORDS = {"vertical": "flip", "rotate180": "180° rotation"}


def pair_conditions(ctx: Context, key: str, pairs: list) -> tuple[Tensor, Tensor]:
    """Conditions (len(pairs), ...) of the first and of the second prompts of config key part_a.<key>."""
    return ctx.encode(key, [p[0] for p in pairs]), ctx.encode(key, [p[1] for p in pairs])


def hybrid_filter(ctx: Context, s) -> tuple[int, float]:
    """(kernel size, sigma) of the hybrids' Gaussian low-pass: part_a.hybrid_kernel_size and hybrid_sigma, given for
    part_a.hybrid_reference_size pixels, rescaled to the backend's image size (A.scale_blur_to_size)."""
    return A.scale_blur_to_size(s.hybrid_kernel_size, s.hybrid_sigma, ctx.den.image_shape[-1], s.hybrid_reference_size)


def highpass_view(x: Tensor, k: int, sigma: float) -> Tensor:
    """What the high-pass half of a hybrid shows: the positive part of x - lowpass(x), scaled to a maximum of 1
    per image, so strokes stay bright on a black background like MNIST. x: (N, C, H, W)."""
    hp = A.highpass(x, k, sigma).clamp(min=0)
    return hp / hp.flatten(1).amax(dim=1).clamp(min=1e-8).reshape(-1, 1, 1, 1)


def make_anagrams(ctx: Context, s, seeds: int, tag: str) -> Tensor:
    """All part_a.anagrams pairs x `seeds` samples, (len(pairs)*seeds, 1, 28, 28) order pair, seed.
    Random draws: ctx.generator(tag): x_T, then one z per step."""
    up, flipped = pair_conditions(ctx, "anagrams", s.anagrams)
    g = ctx.generator(tag)
    x_T = A.pure_noise(ctx.den, len(s.anagrams) * seeds, g)
    conds = [up.repeat_interleave(seeds, 0), flipped.repeat_interleave(seeds, 0)]
    return V.multi_view_sample(ctx.den, x_T, ctx.timesteps(s.stride, s.timestep_spacing), V.anagram_views(s.anagram_flip), conds, g,
                               s.cfg_scale, "mean", desc="anagrams")


def make_hybrids(ctx: Context, s, seeds: int, tag: str) -> Tensor:
    """All part_a.hybrids pairs x `seeds` samples, (len(pairs)*seeds, 1, 28, 28) order pair, seed.
    Random draws: ctx.generator(tag): x_T, then one z per step."""
    low, high = pair_conditions(ctx, "hybrids", s.hybrids)
    k, sigma = hybrid_filter(ctx, s)
    g = ctx.generator(tag)
    x_T = A.pure_noise(ctx.den, len(s.hybrids) * seeds, g)
    conds = [low.repeat_interleave(seeds, 0), high.repeat_interleave(seeds, 0)]
    return V.multi_view_sample(ctx.den, x_T, ctx.timesteps(s.stride, s.timestep_spacing), V.hybrid_views(k, sigma), conds, g, s.cfg_scale,
                               "sum", desc="hybrids")


def _pair_text(pairs: list) -> list[str]:
    return [f"“{a}” / “{b}”" for a, b in pairs]


@dataclass(frozen=True)
class AnagramsResult(Result):
    """images: (J*S, 1, 28, 28) order pair, seed, upright; flipped: the same images under the anagram's view;
    pairs: (J, 2) prompts (upright, flipped)."""

    images: Tensor
    flipped: Tensor
    pairs: list


def anagrams(ctx: Context, s) -> AnagramsResult:
    """1.8: eps = (eps_1(x_t) + f(eps_2(f(x_t)))) / 2 with f = part_a.anagram_flip (views.anagram_views, mean)."""
    x = make_anagrams(ctx, s, s.num_samples, "anagrams")
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "cfg_scale": f"{s.cfg_scale:g}", "num_samples": s.num_samples,
             "num_pairs": len(s.anagrams), "view": VIEW_WORDS[s.anagram_flip], "pairs": ", ".join(_pair_text(s.anagrams))}
    return AnagramsResult([], facts, ctx.clamp(x), ctx.clamp(V.FLIPS[s.anagram_flip].view(x)), [list(p) for p in s.anagrams])


@dataclass(frozen=True)
class HybridsResult(Result):
    """images, lowpass, highpass: (J*S, 1, 28, 28) order pair, seed: the hybrid, its low-pass and its high-pass view
    (highpass_view); pairs: (J, 2) prompts (low-pass, high-pass)."""

    images: Tensor
    lowpass: Tensor
    highpass: Tensor
    pairs: list


def hybrids(ctx: Context, s) -> HybridsResult:
    """1.9: eps = lowpass(eps_1) + highpass(eps_2) (views.hybrid_views, sum), filter from hybrid_filter."""
    x = make_hybrids(ctx, s, s.num_samples, "hybrids")
    k, sigma = hybrid_filter(ctx, s)
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "cfg_scale": f"{s.cfg_scale:g}", "num_samples": s.num_samples,
             "num_pairs": len(s.hybrids), "pairs": ", ".join(_pair_text(s.hybrids)),
             "kernel_size": s.hybrid_kernel_size, "sigma": f"{s.hybrid_sigma:g}", "reference_size": s.hybrid_reference_size,
             "scaled_kernel_size": k, "scaled_sigma": f"{sigma:.3g}", "image_size": ctx.den.image_shape[-1]}
    return HybridsResult([], facts, ctx.clamp(x), ctx.clamp(A.lowpass(x, k, sigma)), highpass_view(x, k, sigma),
                         [list(p) for p in s.hybrids])


@dataclass(frozen=True)
class IllusionsResult(Result):
    """rates: (R, 3) per illusion row: share of seeds read as intended in the first view, in the second, in both;
    kinds: (R,) 'anagram' | 'hybrid'; labels: (R,) '“a 6” / “a 9”'; views: (R, 2) the two views' names."""

    rates: np.ndarray
    kinds: list
    labels: list
    views: list


def illusions(ctx: Context, s) -> IllusionsResult:
    """Success rate over part_a.illusion_num_seeds seeds: (1/n) sum_i [y(v_1(x_i)) = d_1] [y(v_2(x_i)) = d_2].
    Random draws: as anagrams ('anagrams') and hybrids ('hybrids'), with n seeds per pair."""
    N = s.illusion_num_seeds
    rates, kinds, labels, views, metrics = [], [], [], [], []

    def score(kind: str, pairs, view1: Tensor, view2: Tensor, names: tuple[str, str]) -> None:
        p1, _ = ctx.read_digits(view1)  # other backends: no classifier, every rate NaN (n/a)
        p2, _ = ctx.read_digits(view2)
        for j, (a, b) in enumerate(pairs):
            d1, d2 = (ctx.den.encode(a).argmax(dim=1).item(), ctx.den.encode(b).argmax(dim=1).item()) if ctx.is_mnist else (-2, -2)
            ok1 = (p1[j * N:(j + 1) * N] == d1).float()
            ok2 = (p2[j * N:(j + 1) * N] == d2).float()
            r = (float(ok1.mean()), float(ok2.mean()), float((ok1 * ok2).mean())) if ctx.is_mnist else (float("nan"),) * 3
            rates.append(r)
            kinds.append(kind)
            labels.append(f"“{a}” / “{b}”")
            views.append(list(names))
            for metric, value in zip((f"{names[0]}_rate", f"{names[1]}_rate", "both_rate"), r):
                metrics.append(ctx.row(f"{kind}={a}/{b}", metric, value, N))

    x = make_anagrams(ctx, s, N, "anagrams")
    score("anagram", s.anagrams, x, V.FLIPS[s.anagram_flip].view(x), ("upright", "flipped"))
    x = make_hybrids(ctx, s, N, "hybrids")
    k, sigma = hybrid_filter(ctx, s)
    score("hybrid", s.hybrids, A.lowpass(x, k, sigma), highpass_view(x, k, sigma), ("low-pass", "high-pass"))
    table = np.asarray(rates)
    mean_both = {kind: float(table[[k_ == kind for k_ in kinds], 2].mean()) for kind in ("anagram", "hybrid")}
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "num_seeds": N, "flip": FLIP_WORDS[s.anagram_flip],
             "anagram_both": percent(mean_both['anagram']), "hybrid_both": percent(mean_both['hybrid'])}
    return IllusionsResult(metrics, facts, table, kinds, labels, views)
