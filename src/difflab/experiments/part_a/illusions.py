"""Part A 1.8-1.9: visual anagrams and hybrid images, and their success rates as read by the Part B MNIST
classifier over many seeds, each returning a Result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from difflab.edit import algorithms as A
from difflab.edit import views as V
from difflab import DifflabError
from difflab.experiments.part_a.context import Context, Result, percent

VIEW_WORDS = {"vertical": "a vertical flip", "rotate180": "a 180° rotation"}
FLIP_WORDS = {"vertical": "flip", "rotate180": "180° rotation"}


def pair_conditions(ctx: Context, key: str, pairs: list) -> tuple[Tensor, Tensor]:
    """Conditions (len(pairs), ...) of the first and of the second prompts of config key part_a.<key>."""
    return ctx.encode(key, [p[0] for p in pairs]), ctx.encode(key, [p[1] for p in pairs])


def sweep_sigmas(s) -> list[float]:
    """The low-pass sigmas the hybrid sweep measures, in px at part_a.hybrid_reference_size, ascending: the values of
    part_a.hybrid_sigmas, with the writeup's part_a.hybrid_sigma always among them."""
    return sorted({float(v) for v in s.hybrid_sigmas} | {float(s.hybrid_sigma)})


def kernel_follows_sigma(sigma: float, kernel_size: int, writeup_sigma: float, image_size: int,
                         reference_size: int) -> tuple[int, float]:
    """(kernel size, sigma) in px at `image_size` of a Gaussian low-pass with std `sigma` px at `reference_size` px,
    whose kernel keeps the writeup's ratio kernel_size / writeup_sigma (DeepFloyd: 33 px for sigma 2, i.e. 16.5 sigma):

        kernel_ref(sigma) = kernel_size * sigma / writeup_sigma,

    then both are rescaled to `image_size` by A.scale_blur_to_size (sigma' = sigma * image_size / reference_size,
    kernel' = the odd integer nearest kernel_ref * image_size / reference_size, at least 3). So sigma = writeup_sigma
    gives the writeup's own filter (15 px, sigma 0.875 at 28 px) and sigma 4 gives 29 px, sigma 1.75 at 28 px.
    Raises OverflowError when kernel_ref overflows (a subnormal writeup_sigma); config validation reports that
    (difflab.config_limits.hybrid_sweep_errors)."""
    return A.scale_blur_to_size(kernel_size * sigma / writeup_sigma, sigma, image_size, reference_size)


def hybrid_filter(ctx: Context, s, sigma: float | None = None) -> tuple[int, float]:
    """(kernel size, sigma) at the backend's image size of the hybrids' Gaussian low-pass with `sigma` px at
    part_a.hybrid_reference_size (default: the writeup's part_a.hybrid_sigma); the kernel follows sigma at the ratio
    part_a.hybrid_kernel_size / hybrid_sigma (kernel_follows_sigma)."""
    sigma = s.hybrid_sigma if sigma is None else sigma
    return kernel_follows_sigma(sigma, s.hybrid_kernel_size, s.hybrid_sigma, ctx.den.image_shape[-1],
                                s.hybrid_reference_size)


def select_sigma(sigmas: list[float], mean_success: list[float], writeup_sigma: float) -> int:
    """The index of the sigma with the highest mean success rate; among ties (equal within 1e-9) the sigma nearest
    the writeup's, then the smaller one. sigmas and mean_success: (S,), S >= 1. Raises ValueError if S = 0 or the
    lengths differ."""
    if not sigmas or len(sigmas) != len(mean_success):
        raise ValueError(f"{len(sigmas)} sigmas but {len(mean_success)} success rates")
    top = max(mean_success)
    tied = [i for i, r in enumerate(mean_success) if abs(r - top) <= 1e-9]
    return min(tied, key=lambda i: (abs(sigmas[i] - writeup_sigma), sigmas[i]))


def chosen_sigma(ctx: Context, s) -> float:
    """The low-pass sigma (px at part_a.hybrid_reference_size) of the 1.9 figures and the illusions table: the number
    part_a.hybrid_sigma_choice, or for 'best' the sigma the hybrid sweep selected (select_sigma), read from its
    result.npz at ctx.hybrid_sweep. Raises DifflabError when that file is not given or was computed for other sigmas."""
    if s.hybrid_sigma_choice != "best":
        return float(s.hybrid_sigma_choice)
    if not ctx.hybrid_sweep:
        raise DifflabError("config key 'part_a.hybrid_sigma_choice' = 'best' needs the part_a hybrid_sweep result "
                           "(parta run --hybrid-sweep results/experiments/part_a/hybrid_sweep/result.npz)")
    sigmas = sweep_sigmas(s)
    with np.load(ctx.hybrid_sweep, allow_pickle=False) as sweep:
        measured, best = sweep["sigmas"], int(sweep["best"])
    if measured.shape != (len(sigmas),) or not np.allclose(measured, sigmas, rtol=1e-6, atol=0):
        raise DifflabError(f"{ctx.hybrid_sweep}: the sweep measured sigmas {[float(v) for v in measured]}, but "
                           f"part_a.hybrid_sigmas with hybrid_sigma is {sigmas}; rerun the part_a hybrid_sweep job")
    return sigmas[best]


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
                               s.cfg_scale, "mean", desc="anagrams", ddim_eta=ctx.ddim_eta)


def make_hybrids(ctx: Context, s, seeds: int, tag: str, sigma_ref: float) -> Tensor:
    """All part_a.hybrids pairs x `seeds` samples, (len(pairs)*seeds, 1, 28, 28) order pair, seed, with the low-pass
    of `sigma_ref` px at part_a.hybrid_reference_size (hybrid_filter).
    Random draws: ctx.generator(tag): x_T, then one z per step (the same draws for every sigma)."""
    low, high = pair_conditions(ctx, "hybrids", s.hybrids)
    k, sigma = hybrid_filter(ctx, s, sigma_ref)
    g = ctx.generator(tag)
    x_T = A.pure_noise(ctx.den, len(s.hybrids) * seeds, g)
    conds = [low.repeat_interleave(seeds, 0), high.repeat_interleave(seeds, 0)]
    return V.multi_view_sample(ctx.den, x_T, ctx.timesteps(s.stride, s.timestep_spacing), V.hybrid_views(k, sigma), conds, g, s.cfg_scale,
                               "sum", desc="hybrids", ddim_eta=ctx.ddim_eta)


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


def sigma_reason(s) -> str:
    """Why the 1.9 figures use their sigma, in the report's words."""
    return ("the best of the sweep (highest mean success rate; ties go to the sigma nearest the writeup's)"
            if s.hybrid_sigma_choice == "best" else "set by part_a.hybrid_sigma_choice")


def hybrids(ctx: Context, s) -> HybridsResult:
    """1.9: eps = lowpass(eps_1) + highpass(eps_2) (views.hybrid_views, sum), with the low-pass sigma chosen_sigma and
    its kernel from hybrid_filter."""
    used = chosen_sigma(ctx, s)
    x = make_hybrids(ctx, s, s.num_samples, "hybrids", used)
    k, sigma = hybrid_filter(ctx, s, used)
    facts = {"seed": ctx.seed, "num_timesteps": ctx.T, "cfg_scale": f"{s.cfg_scale:g}", "num_samples": s.num_samples,
             "num_pairs": len(s.hybrids), "pairs": ", ".join(_pair_text(s.hybrids)),
             "kernel_size": s.hybrid_kernel_size, "sigma": f"{s.hybrid_sigma:g}", "reference_size": s.hybrid_reference_size,
             "used_sigma": f"{used:g}", "sigma_reason": sigma_reason(s),
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
        for (a, b), r in zip(pairs, success_rates(ctx, pairs, view1, view2, N)):
            r = tuple(float(v) for v in r)
            rates.append(r)
            kinds.append(kind)
            labels.append(f"“{a}” / “{b}”")
            views.append(list(names))
            for metric, value in zip((f"{names[0]}_rate", f"{names[1]}_rate", "both_rate"), r):
                metrics.append(ctx.row(f"{kind}={a}/{b}", metric, value, N))

    x = make_anagrams(ctx, s, N, "anagrams")
    score("anagram", s.anagrams, x, V.FLIPS[s.anagram_flip].view(x), ("upright", "flipped"))
    used = chosen_sigma(ctx, s)
    x = make_hybrids(ctx, s, N, "hybrids", used)
    k, sigma = hybrid_filter(ctx, s, used)
    score("hybrid", s.hybrids, A.lowpass(x, k, sigma), highpass_view(x, k, sigma), ("low-pass", "high-pass"))
    table = np.asarray(rates)
    mean_both = {kind: float(table[[k_ == kind for k_ in kinds], 2].mean()) for kind in ("anagram", "hybrid")}
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "num_seeds": N, "flip": FLIP_WORDS[s.anagram_flip],
             "anagram_both": percent(mean_both['anagram']), "hybrid_both": percent(mean_both['hybrid']),
             "hybrid_sigma": f"{used:g}", "hybrid_scaled_sigma": f"{sigma:.3g}"}
    return IllusionsResult(metrics, facts, table, kinds, labels, views)


def success_rates(ctx: Context, pairs, view1: Tensor, view2: Tensor, seeds: int) -> np.ndarray:
    """Success rates (J, 3) of J illusion pairs [p_1, p_2], `seeds` images per pair in order pair, seed: the share the
    classifier reads as d_1 (p_1's digit) in view1, as d_2 in view2, and as both, i.e.
    (1/n) sum_i [y(v_1(x_i)) = d_1] [y(v_2(x_i)) = d_2]. view1, view2: (J*seeds, C, H, W). NaN (n/a) on backends
    without a classifier for their images (Context.read_digits)."""
    if not ctx.is_mnist:
        return np.full((len(pairs), 3), np.nan)
    p1, _ = ctx.read_digits(view1)
    p2, _ = ctx.read_digits(view2)
    rates = []
    for j, (a, b) in enumerate(pairs):
        d1, d2 = ctx.den.encode(a).argmax(dim=1).item(), ctx.den.encode(b).argmax(dim=1).item()
        ok1, ok2 = p1[j * seeds:(j + 1) * seeds] == d1, p2[j * seeds:(j + 1) * seeds] == d2
        rates.append((int(ok1.sum()) / seeds, int(ok2.sum()) / seeds, int((ok1 & ok2).sum()) / seeds))
    return np.asarray(rates, dtype=np.float64)


@dataclass(frozen=True)
class HybridSweepResult(Result):
    """sigmas: (S,) low-pass sigma in px at part_a.hybrid_reference_size, ascending; scaled_sigmas (S,) and
    kernel_sizes (S,): the filter at the image size; rates: (S, J, 3) per sigma and pair, the share of seeds read as
    intended in the low-pass, in the high-pass, in both; mean_both: (S,) the mean of the 'both' rate over pairs;
    best: () index of the selected sigma (select_sigma); writeup: () index of part_a.hybrid_sigma; used_sigma: () the
    sigma the 1.9 figures use (chosen_sigma: the best one, or part_a.hybrid_sigma_choice); pairs: (J, 2) prompts."""

    sigmas: np.ndarray
    scaled_sigmas: np.ndarray
    kernel_sizes: np.ndarray
    rates: np.ndarray
    mean_both: np.ndarray
    best: np.ndarray
    writeup: np.ndarray
    used_sigma: np.ndarray
    pairs: list


def hybrid_sweep(ctx: Context, s) -> HybridSweepResult:
    """1.9's low-pass sigma against hybrid success: for every sigma of sweep_sigmas and every part_a.hybrids pair, the
    rate over n = part_a.illusion_num_seeds seeds (1/n) sum_i [y(lowpass(x_i)) = d_1] [y(highpass_view(x_i)) = d_2],
    as in the illusions table; then the best sigma by select_sigma. Random draws: ctx.generator('hybrids') afresh for
    each sigma, so every sigma starts from the same x_T and z (common random numbers)."""
    N, J = s.illusion_num_seeds, len(s.hybrids)
    sigmas = sweep_sigmas(s)
    filters = [hybrid_filter(ctx, s, sigma) for sigma in sigmas]
    rates = []
    for sigma_ref, (k, sigma) in zip(sigmas, filters):
        x = make_hybrids(ctx, s, N, "hybrids", sigma_ref)
        rates.append(success_rates(ctx, s.hybrids, A.lowpass(x, k, sigma), highpass_view(x, k, sigma), N))
    rates = np.stack(rates)  # (S, J, 3)
    mean_both = rates[:, :, 2].mean(axis=1)
    # Without a classifier (NaN rates) every sigma ties, and the tie rule picks the writeup's.
    best = select_sigma(sigmas, [float(r) for r in np.nan_to_num(mean_both)], float(s.hybrid_sigma))
    writeup = sigmas.index(float(s.hybrid_sigma))
    used = sigmas[best] if s.hybrid_sigma_choice == "best" else float(s.hybrid_sigma_choice)
    metrics = []
    for i, sigma_ref in enumerate(sigmas):
        for j, (a, b) in enumerate(s.hybrids):
            for col, metric in enumerate(("low-pass_rate", "high-pass_rate", "both_rate")):
                metrics.append(ctx.row(f"sigma={sigma_ref:g},hybrid={a}/{b}", metric, rates[i, j, col], N))
        metrics.append(ctx.row(f"sigma={sigma_ref:g},hybrid=mean", "both_rate", mean_both[i], J * N))
    image_size = ctx.den.image_shape[-1]
    used_k, used_scaled = hybrid_filter(ctx, s, used)
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "num_seeds": N, "num_pairs": J,
             "pairs": ", ".join(_pair_text(s.hybrids)), "reference_size": s.hybrid_reference_size, "image_size": image_size,
             "num_sigmas": len(sigmas), "sigmas": ", ".join(f"{v:g}" for v in sigmas),
             "scaled_sigmas": ", ".join(f"{sg:.3g}" for _, sg in filters),
             "kernel_ratio": f"{s.hybrid_kernel_size / s.hybrid_sigma:.3g}",
             "best_sigma": f"{sigmas[best]:g}", "best_scaled_sigma": f"{filters[best][1]:.3g}",
             "best_kernel_size": filters[best][0], "best_success": percent(mean_both[best]),
             "writeup_sigma": f"{sigmas[writeup]:g}", "writeup_scaled_sigma": f"{filters[writeup][1]:.3g}",
             "writeup_kernel_size": filters[writeup][0], "writeup_success": percent(mean_both[writeup]),
             "used_sigma": f"{used:g}", "used_scaled_sigma": f"{used_scaled:.3g}", "used_kernel_size": used_k,
             "sigma_reason": sigma_reason(s)}
    return HybridSweepResult(metrics, facts, np.asarray(sigmas), np.asarray([sg for _, sg in filters]),
                             np.asarray([k for k, _ in filters]), rates, mean_both, np.asarray(best), np.asarray(writeup),
                             np.asarray(used), [list(p) for p in s.hybrids])
