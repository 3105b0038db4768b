"""Views for multi-view illusions (visual anagrams, hybrid images) and the one noise estimate that combines them.

A view is a pair of maps on (N, C, H, W) tensors: `view(x)` is what the model sees for one prompt, and
`inverse_view(eps)` brings that prompt's noise estimate back into the frame of x (the View idea of
dangeng/visual_anagrams, Geng et al. 2024). With views v_k and conditions c_k,

    eps = reduce_k inverse_view_k( eps_theta(view_k(x_t), t, c_k) ),   reduce = mean | sum     (spec A.1.8, A.1.9)

A visual anagram is [Identity, VerticalFlip or Rotate180] with the mean; a hybrid image is [LowPass, HighPass]
with the sum, where the filters act in inverse_view (factorized diffusion). A learned variance is averaged over
the views after `inverse_variance` (the geometric part of the view; filters leave a variance as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from difflab.edit.algorithms import (
    Callback,
    denoise,
    guided_noise_batch,
    highpass,
    lowpass,
)
from difflab.edit.denoiser import Denoiser


class View(Protocol):
    def view(self, x: Tensor) -> Tensor: ...

    def inverse_view(self, eps: Tensor) -> Tensor: ...

    def inverse_variance(self, var: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Identity:
    """The image as it is."""

    def view(self, x: Tensor) -> Tensor:
        return x

    def inverse_view(self, eps: Tensor) -> Tensor:
        return eps

    def inverse_variance(self, var: Tensor) -> Tensor:
        return var


@dataclass(frozen=True)
class Flip:
    """A flip of the pixel grid: dims (-2,) turns the image upside down (vertical flip), dims (-2, -1) rotates it by
    180°. An involution, so inverse_view = view."""

    dims: tuple[int, ...]

    def view(self, x: Tensor) -> Tensor:
        return torch.flip(x, dims=list(self.dims))

    def inverse_view(self, eps: Tensor) -> Tensor:
        return torch.flip(eps, dims=list(self.dims))

    def inverse_variance(self, var: Tensor) -> Tensor:
        return torch.flip(var, dims=list(self.dims))


@dataclass(frozen=True)
class LowPass:
    """The model sees the whole image; its estimate keeps only the Gaussian low-pass (kernel_size px, std sigma px)."""

    kernel_size: int
    sigma: float

    def view(self, x: Tensor) -> Tensor:
        return x

    def inverse_view(self, eps: Tensor) -> Tensor:
        return lowpass(eps, self.kernel_size, self.sigma)

    def inverse_variance(self, var: Tensor) -> Tensor:
        return var


@dataclass(frozen=True)
class HighPass(LowPass):
    """The model sees the whole image; its estimate keeps only the high-pass eps - lowpass(eps) (same filter)."""

    def inverse_view(self, eps: Tensor) -> Tensor:
        return highpass(eps, self.kernel_size, self.sigma)


# config key part_a.anagram_flip -> the anagram's second view
FLIPS: dict[str, Flip] = {"vertical": Flip((-2,)), "rotate180": Flip((-2, -1))}


def anagram_views(flip: str) -> list[View]:
    """[Identity, the flip named by part_a.anagram_flip ('vertical' | 'rotate180')]; combine with reduction 'mean'."""
    return [Identity(), FLIPS[flip]]


def hybrid_views(kernel_size: int, sigma: float) -> list[View]:
    """[LowPass, HighPass] with one Gaussian filter; combine with reduction 'sum' (lowpass + highpass = identity)."""
    return [LowPass(kernel_size, sigma), HighPass(kernel_size, sigma)]


def _reduce(parts: list[Tensor], reduction: str) -> Tensor:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total / len(parts) if reduction == "mean" else total


def multi_view_noise(
    denoiser: Denoiser, x_t: Tensor, t: int, views: list[View], conds: list[Tensor], cfg_scale: float | None,
    reduction: str = "mean",
) -> tuple[Tensor, Tensor | None]:
    """eps = reduce_k inverse_view_k(CFG-eps(view_k(x_t), t, c_k)), all views in one forward pass
    (algorithms.guided_noise_batch). x_t: (N, C, H, W); conds: one (N or 1, ...) condition per view;
    reduction: 'mean' (anagrams) or 'sum' (hybrids). Returns (eps (N, C, H, W), the mean of the views' variances
    after inverse_variance, or None when the model has none). Raises ValueError for an unknown reduction or
    a views/conds length mismatch."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction is {reduction!r}; expected 'mean' or 'sum'")
    if len(views) != len(conds) or not views:
        raise ValueError(f"{len(views)} views but {len(conds)} conditions")
    estimates = guided_noise_batch(denoiser, [v.view(x_t) for v in views], t, conds, cfg_scale)
    eps = _reduce([v.inverse_view(e) for v, (e, _) in zip(views, estimates)], reduction)
    if any(var is None for _, var in estimates):
        return eps, None
    return eps, _reduce([v.inverse_variance(var) for v, (_, var) in zip(views, estimates)], "mean")


def multi_view_sample(
    denoiser: Denoiser,
    x: Tensor,
    timesteps: list[int],
    views: list[View],
    conds: list[Tensor],
    generator: torch.Generator,
    cfg_scale: float | None,
    reduction: str = "mean",
    i_start: int = 0,
    callback: Callback | None = None,
    desc: str | None = None,
    ddim_eta: float | None = None,
) -> Tensor:
    """An illusion: the reverse process (algorithms.denoise; ddim_eta as there) from x at timesteps[i_start] with
    multi_view_noise.
    Random draws: one z per step, as in iterative denoising."""

    def noise_fn(x_t: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        return multi_view_noise(denoiser, x_t, t, views, conds, cfg_scale, reduction)

    return denoise(denoiser, x, timesteps, i_start, noise_fn, generator, callback=callback, desc=desc, ddim_eta=ddim_eta)
