"""Per-image reconstruction metrics (MSE, PSNR, SSIM) for images in [0, 1], reported as mean +- std.

Every function takes two float tensors of the same shape (N, C, H, W) and returns one value per image (N,).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from difflab import DifflabError


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise DifflabError(f"image metrics need two N x C x H x W tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def mse_per_image(x: Tensor, y: Tensor) -> Tensor:
    """MSE_i = mean over pixels of (x_i - y_i)^2."""
    _check_pair(x, y)
    return (x.double() - y.double()).square().flatten(1).mean(dim=1)


def psnr_from_mse(mse: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR = 10 log10(data_range^2 / MSE) in dB (inf for identical images)."""
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr_per_image(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    return psnr_from_mse(mse_per_image(x, y), data_range)


def ssim_per_image(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """SSIM of each image pair (torchmetrics: 11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(x, y)
    return structural_similarity_index_measure(x.float(), y.float(), data_range=data_range, reduction="none")


def summarize(values) -> tuple[float, float]:
    """(mean, sample standard deviation with n - 1 in the denominator; 0 for a single value)."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise DifflabError("summarize needs at least one value")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std
