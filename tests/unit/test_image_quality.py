"""Image quality metrics: MSE, PSNR and the standard SSIM over a declared value range.

SSIM is checked against scikit-image's `structural_similarity` (the independent implementation of Wang et al. 2004)
on sample photos, synthetic strokes and noise at several sizes; PSNR against its closed form. No MNIST file needed.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data as skdata
from skimage.metrics import structural_similarity
from skimage.transform import resize

from difflab import DifflabError
from difflab.metrics.image_quality import (
    SSIM_CONVENTION,
    mse_per_image,
    psnr_from_mse,
    psnr_per_image,
    ssim_per_image,
    summarize,
)

UNIT = (0.0, 1.0)


def strokes(n: int, size: tuple[int, int] = (28, 28), seed: int = 0) -> torch.Tensor:
    """n float64 images N x 1 x H x W in [0, 1]: one soft bright line segment each on black, like a thin digit."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    angle = math.pi * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    cy = h / 2 + 2 * torch.randn(n, 1, 1, generator=g, dtype=torch.float64)
    cx = w / 2 + 2 * torch.randn(n, 1, 1, generator=g, dtype=torch.float64)
    across = ((xs - cx) * torch.sin(angle) - (ys - cy) * torch.cos(angle)).abs()
    along = ((xs - cx) * torch.cos(angle) + (ys - cy) * torch.sin(angle)).abs()
    return (torch.exp(-across.square() / 2) * (along < 0.35 * min(h, w))).unsqueeze(1)


def bar(column: int) -> torch.Tensor:
    """The issue's example: a 4-pixel-wide white bar at rows 8-19 from `column` on a black 28 x 28 image."""
    x = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    x[..., 8:20, column:column + 4] = 1.0
    return x


def photo_crops(size: tuple[int, int]) -> torch.Tensor:
    """Two grey sample photos (camera, coins) shrunk to H x W, float64 in [0, 1], as N x 1 x H x W."""
    crops = [resize(img.astype(np.float64) / 255.0, size, anti_aliasing=True) for img in (skdata.camera(), skdata.coins())]
    return torch.from_numpy(np.stack(crops)).unsqueeze(1).clamp(0, 1)


def noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def skimage_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    """scikit-image's SSIM per image, Wang et al.'s settings (Gaussian sigma 1.5, population covariances)."""
    return np.array([structural_similarity(a.numpy(), b.numpy(), gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=data_range, channel_axis=0)
                     for a, b in zip(x.double(), y.double())])


# ---------------------------------------------------------------- SSIM: the standard definition

def test_ssim_of_the_shifted_bar_is_the_standard_value():
    # torchmetrics' own reduction (reflect padding, border included) gives 0.7927 here
    ssim = ssim_per_image(bar(12), bar(13), UNIT)
    assert ssim.shape == (1,) and ssim.dtype == torch.float64
    assert ssim.item() == pytest.approx(0.5250, abs=5e-5)
    assert ssim.item() == pytest.approx(skimage_ssim(bar(12), bar(13))[0], abs=1e-9)


@pytest.mark.parametrize("size", [(11, 11), (16, 23), (28, 28), (45, 32)])
def test_ssim_matches_scikit_image_on_several_images_and_sizes(size):
    clean = torch.cat([photo_crops(size), strokes(3, size)])
    pairs = [(clean, noisy(clean, 0.1)), (clean, noisy(clean, 0.4, seed=2)), (clean, clean.roll(1, dims=-1)),
             (clean, torch.rand(clean.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64))]
    for x, y in pairs:
        np.testing.assert_allclose(ssim_per_image(x, y, UNIT).numpy(), skimage_ssim(x, y), rtol=0, atol=1e-9)


def test_ssim_matches_scikit_image_on_colour_images():
    rgb = resize(skdata.astronaut().astype(np.float64) / 255.0, (32, 30), anti_aliasing=True).clip(0, 1)
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    y = noisy(x, 0.2)
    np.testing.assert_allclose(ssim_per_image(x, y, UNIT).numpy(), skimage_ssim(x, y), rtol=0, atol=1e-9)


def test_ssim_is_one_on_itself_and_falls_with_noise():
    x = strokes(6)
    torch.testing.assert_close(ssim_per_image(x, x, UNIT), torch.ones(6, dtype=torch.float64))
    means = [ssim_per_image(x, noisy(x, s), UNIT).mean().item() for s in (0.05, 0.1, 0.3, 0.6)]
    assert 1 > means[0] and all(a > b for a, b in zip(means, means[1:])), means


def test_ssim_convention_names_window_sigma_and_border_rule():
    assert "11×11" in SSIM_CONVENTION and "σ = 1.5" in SSIM_CONVENTION and "inside the image" in SSIM_CONVENTION


def test_ssim_rejects_images_smaller_than_one_window():
    x = torch.zeros(1, 1, 10, 28)
    with pytest.raises(DifflabError, match="at least 11 x 11 pixels.*got 10 x 28"):
        ssim_per_image(x, x, UNIT)


# ---------------------------------------------------------------- PSNR / MSE and the declared range

@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)])
def test_psnr_closed_form_uses_the_declared_data_range(value_range):
    lo, hi = value_range
    c = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    x = torch.full((3, 1, 4, 4), lo, dtype=torch.float64)
    y = lo + (hi - lo) * c[:, None, None, None].expand_as(x)
    torch.testing.assert_close(mse_per_image(x, y, value_range), ((hi - lo) * c) ** 2)
    torch.testing.assert_close(psnr_per_image(x, y, value_range), -20 * torch.log10(c))  # 10 log10(L^2 / (c L)^2)
    assert psnr_per_image(x, y, value_range)[1].item() == pytest.approx(6.0206, abs=1e-4)
    assert torch.isinf(psnr_per_image(x, x, value_range)).all()
    torch.testing.assert_close(psnr_from_mse(mse_per_image(x, y), value_range), psnr_per_image(x, y, value_range))


def test_same_images_in_unit_and_symmetric_range_score_the_same():
    clean = torch.cat([strokes(4), photo_crops((28, 28))])
    for out in (noisy(clean, 0.2), noisy(clean, 0.5, seed=4), bar(13).expand_as(clean)):
        unit_psnr, unit_ssim = psnr_per_image(out, clean, UNIT), ssim_per_image(out, clean, UNIT)
        sym_out, sym_clean = 2 * out - 1, 2 * clean - 1  # DeepFloyd's range
        torch.testing.assert_close(psnr_per_image(sym_out, sym_clean, (-1.0, 1.0)), unit_psnr)
        torch.testing.assert_close(ssim_per_image(sym_out, sym_clean, (-1.0, 1.0)), unit_ssim)
        torch.testing.assert_close(mse_per_image(sym_out, sym_clean), 4 * mse_per_image(out, clean))


@settings(max_examples=25, deadline=None)
@given(lo=st.floats(-100, 100), width=st.floats(0.01, 500), seed=st.integers(0, 2**16))
def test_psnr_and_ssim_do_not_depend_on_where_the_range_lies(lo, width, seed):
    clean = strokes(2, (14, 12), seed=seed)
    out = noisy(clean, 0.3, seed=seed)
    moved = [lo + width * t for t in (out, clean)]
    torch.testing.assert_close(psnr_per_image(*moved, (lo, lo + width)), psnr_per_image(out, clean, UNIT))
    torch.testing.assert_close(ssim_per_image(*moved, (lo, lo + width)), ssim_per_image(out, clean, UNIT),
                               rtol=0, atol=1e-6)


# ---------------------------------------------------------------- bad input

def test_values_outside_the_declared_range_are_rejected():
    sym = 2 * strokes(2) - 1
    for metric in (psnr_per_image, ssim_per_image, mse_per_image):
        with pytest.raises(DifflabError, match=r"x has values in \[-1.00, 1.00\], outside the declared value range \[0, 1\]"):
            metric(sym, sym, UNIT)
    with pytest.raises(DifflabError, match=r"y has values in \[0.00, 1.50\].*\[0, 1\]"):
        psnr_per_image(strokes(2), 1.5 * strokes(2), UNIT)
    assert psnr_per_image(strokes(2) * (1 + 1e-7), strokes(2), UNIT).min() > 100  # float round-off is tolerated


def test_integer_images_and_nan_are_rejected():
    u8 = (255 * strokes(2)).to(torch.uint8)
    for metric in (psnr_per_image, ssim_per_image):
        with pytest.raises(DifflabError, match="x has dtype torch.uint8; expected floating-point"):
            metric(u8, u8, (0.0, 255.0))
    with pytest.raises(DifflabError, match="y has dtype torch.int64"):
        mse_per_image(strokes(2), torch.zeros(2, 1, 28, 28, dtype=torch.int64))
    x = strokes(2)
    y = x.clone()
    y[0, 0, 3, 3] = float("nan")
    with pytest.raises(DifflabError, match="y contains NaN"):
        ssim_per_image(x, y, UNIT)


@pytest.mark.parametrize("value_range", [(1.0, 0.0), (0.0, 0.0), (0.0, float("inf")), (0.0,), "01", None])
def test_malformed_value_range_is_rejected(value_range):
    x = strokes(1)
    with pytest.raises(DifflabError, match="value_range must be"):
        psnr_per_image(x, x, value_range)


def test_image_metrics_reject_mismatched_shapes():
    with pytest.raises(DifflabError, match="equal shape"):
        psnr_per_image(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28), UNIT)
    with pytest.raises(DifflabError, match="equal shape"):
        ssim_per_image(torch.zeros(1, 28, 28), torch.zeros(1, 28, 28), UNIT)


def test_summarize():
    assert summarize([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert summarize(torch.tensor([3.0])) == (3.0, 0.0)
    with pytest.raises(DifflabError):
        summarize([])
