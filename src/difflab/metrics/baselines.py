"""The classical baseline both parts compare against: Gaussian-blur denoising with the blur chosen from a list of
candidates by the lowest mean squared error on held-out images (never on the images it is then scored on)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def best_blur_sigma(clean: Tensor, noisy: Tensor, candidates: Sequence[float], abar: Tensor | float = 1.0,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """The candidate sigma whose blur denoiser has the lowest mean MSE against `clean`:

        sigma* = argmin_s mean_i MSE( clamp(G_s * (noisy_i / sqrt(abar))), clean_i )

    where G_s is the Gaussian blur of std s pixels with a 2 ceil(3 s) + 1 kernel (difflab.edit.algorithms.blur_denoise)
    and the schedule weight `abar` rescales a DDPM-noised image x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps to the clean
    range (Part A, spec A.1.2); abar = 1 for additive noise z = x + sigma eps (Part B, spec B.1.2.2). The first of
    equal minima wins.

    Args: clean, noisy: (N, C, H, W) float tensors, clean in `value_range`; candidates: positive sigmas in pixels
    (config part_a.blur_sigmas); abar: a scalar (tensor or float) in (0, 1]; value_range: the clamp of the estimate.
    Returns the chosen sigma as a float.
    """
    from difflab.edit.algorithms import blur_denoise
    from difflab.metrics.image_quality import mse_per_image

    abar = torch.as_tensor(abar, dtype=noisy.dtype, device=noisy.device)
    lo, hi = value_range
    mse = [float(mse_per_image(blur_denoise(noisy, abar, s).clamp(lo, hi), clean).mean()) for s in candidates]
    return float(candidates[min(range(len(candidates)), key=mse.__getitem__)])
