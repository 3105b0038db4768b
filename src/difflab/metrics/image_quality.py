"""Per-image reconstruction metrics (MSE, PSNR, SSIM) over a declared value range, reported as mean +- std.

Every metric takes two float tensors of the same shape (N, C, H, W) and returns one float64 value per image, shape
(N,). PSNR and SSIM take `value_range = (lo, hi)`, the range clean images live in (a Denoiser's `value_range`:
(0, 1) for MNIST, (-1, 1) for DeepFloyd); the data range of the formulas is hi - lo, and the same images stored in
[0, 1] or in [-1, 1] get the same PSNR and SSIM. Inputs are checked once: integer or bool dtypes, unequal shapes and
values outside [lo, hi] (or NaN) raise a one-line `DifflabError`; nothing is clamped or rescaled silently.

SSIM is the standard one of Wang et al. 2004 (and of scikit-image's `structural_similarity` with
`gaussian_weights=True, sigma=1.5, use_sample_covariance=False`): the mean of the SSIM map over the windows that
lie wholly inside the image. torchmetrics' map (reflect-padded) is computed and its border cropped; torchmetrics'
own reduction averages the padded border too, which on 28 x 28 digits is most of the map.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from difflab import DifflabError

SSIM_SIGMA = 1.5  # standard deviation of the Gaussian window, pixels (Wang et al. 2004)
SSIM_WINDOW = 11  # window side, pixels: 2 * int(3.5 * sigma + 0.5) + 1, torchmetrics' and scikit-image's truncation
SSIM_K1, SSIM_K2 = 0.01, 0.03  # stabilising constants: C1 = (K1 L)^2, C2 = (K2 L)^2, L = hi - lo
SSIM_CONVENTION = ("Gaussian window 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03, mean over the windows inside the image "
                   "(Wang et al. 2004)")
RANGE_TOLERANCE = 1e-5  # values may exceed [lo, hi] by this fraction of hi - lo (float round-off), no more


def _check_value_range(value_range) -> tuple[float, float]:
    pair = tuple(value_range) if isinstance(value_range, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in pair):
        raise DifflabError(f"image metrics: value_range must be a pair (lo, hi) of numbers, got {value_range!r}")
    lo, hi = float(pair[0]), float(pair[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise DifflabError(f"image metrics: value_range must be finite with lo < hi, got ({lo:g}, {hi:g})")
    return lo, hi


def _check_images(name: str, x: Tensor, lo: float, hi: float) -> None:
    if not torch.is_floating_point(x):
        raise DifflabError(f"image metrics: {name} has dtype {x.dtype}; expected floating-point images in the declared "
                           f"value range [{lo:g}, {hi:g}] (convert first, e.g. uint8 / 255 for [0, 1])")
    tol = RANGE_TOLERANCE * (hi - lo)
    inside = (x >= lo - tol) & (x <= hi + tol)  # False for NaN
    if not bool(inside.all()):
        if bool(torch.isnan(x).any()):
            raise DifflabError(f"image metrics: {name} contains NaN values")
        raise DifflabError(f"image metrics: {name} has values in [{x.min().item():.2f}, {x.max().item():.2f}], outside "
                           f"the declared value range [{lo:g}, {hi:g}]")


def check_images(x: Tensor, y: Tensor, value_range=None) -> tuple[float, float] | None:
    """Validate an image pair for the metrics; return value_range as floats (lo, hi), or None when not given.

    x, y: tensors (N, C, H, W) of equal shape, floating point, all values in [lo, hi] (up to RANGE_TOLERANCE of
    hi - lo) when value_range is given. Raises DifflabError naming what is wrong (shape, dtype, range, NaN).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise DifflabError(f"image metrics need two N x C x H x W tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if value_range is None:
        for name, t in (("x", x), ("y", y)):
            if not torch.is_floating_point(t):
                raise DifflabError(f"image metrics: {name} has dtype {t.dtype}; expected floating-point images")
        return None
    lo, hi = _check_value_range(value_range)
    _check_images("x", x, lo, hi)
    _check_images("y", y, lo, hi)
    return lo, hi


def mse_per_image(x: Tensor, y: Tensor, value_range=None) -> Tensor:
    """MSE_i = mean over the C H W pixels of (x_i - y_i)^2, in squared image units (float64, shape (N,)).

    x, y: float (N, C, H, W). value_range (lo, hi), optional: when given, both are checked to lie in it. MSE depends
    on the units: the same images stored in [-1, 1] have 4 times the MSE of [0, 1]; PSNR does not.
    Raises DifflabError (see check_images).
    """
    check_images(x, y, value_range)
    return (x.double() - y.double()).square().flatten(1).mean(dim=1)


def psnr_from_mse(mse: Tensor, value_range) -> Tensor:
    """PSNR = 10 log10(L^2 / MSE) in dB with data range L = hi - lo of value_range (inf for MSE = 0).

    mse: any shape, in the squared units of value_range. Source: the usual definition, e.g. scikit-image's
    `peak_signal_noise_ratio(..., data_range=L)`. Raises DifflabError for a malformed value_range.
    """
    lo, hi = _check_value_range(value_range)
    return 10.0 * torch.log10((hi - lo) ** 2 / mse)


def psnr_per_image(x: Tensor, y: Tensor, value_range) -> Tensor:
    """PSNR of each image pair in dB (float64, shape (N,)); x, y float (N, C, H, W) with values in value_range."""
    lo, hi = check_images(x, y, _check_value_range(value_range))
    return psnr_from_mse(mse_per_image(x, y), (lo, hi))


def ssim_per_image(x: Tensor, y: Tensor, value_range) -> Tensor:
    """Standard SSIM of each image pair (float64, shape (N,), at most 1), averaged over channels and windows.

    SSIM(a, b) = (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2)) per
    window (Wang et al. 2004, eq. 13), with Gaussian-weighted local statistics (SSIM_CONVENTION); the image's SSIM is
    the mean over the windows that lie wholly inside it, i.e. over the (H - 10) x (W - 10) centres.
    x, y: float (N, C, H, W), H and W >= 11, values in value_range = (lo, hi). Both are first mapped to [0, 1] by
    (v - lo) / (hi - lo) (the luminance term assumes intensities from 0), so [0, 1] and [-1, 1] copies of the same
    images score the same. Equals scikit-image's `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)` on the mapped images. Raises DifflabError for bad input.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    lo, hi = check_images(x, y, _check_value_range(value_range))
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise DifflabError(f"image metrics: SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels "
                           f"(one whole {SSIM_WINDOW} x {SSIM_WINDOW} window), got {x.shape[-2]} x {x.shape[-1]}")
    a, b = ((t.double() - lo) / (hi - lo) for t in (x, y))
    _, ssim_map = structural_similarity_index_measure(a, b, gaussian_kernel=True, sigma=SSIM_SIGMA, data_range=1.0,
                                                      k1=SSIM_K1, k2=SSIM_K2, reduction="none", return_full_image=True)
    border = (SSIM_WINDOW - 1) // 2
    return ssim_map[..., border:-border, border:-border].flatten(1).mean(dim=1)


def summarize(values) -> tuple[float, float]:
    """(mean, sample standard deviation with n - 1 in the denominator; 0 for a single value)."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise DifflabError("summarize needs at least one value")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std
