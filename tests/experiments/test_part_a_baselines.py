"""The one best-blur selector (difflab.metrics.baselines.best_blur_sigma) against an independent Gaussian filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from difflab.metrics.baselines import best_blur_sigma


def smooth_digits(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Blurry blobs in [0, 1]: images whose best denoising blur is neither the smallest nor the largest candidate."""
    rng = np.random.default_rng(seed)
    x = np.stack([gaussian_filter(rng.random((28, 28)), 2.0, mode="mirror") for _ in range(n)])
    x = (x - x.min()) / (x.max() - x.min())
    return torch.from_numpy(x).float().unsqueeze(1)


def scipy_choice(clean: torch.Tensor, noisy: torch.Tensor, candidates) -> float:
    """argmin of the mean MSE with scipy's Gaussian filter (mirror padding and a +-ceil(3 sigma) kernel, as torchvision)."""
    c, z = clean[:, 0].numpy().astype(np.float64), noisy[:, 0].numpy().astype(np.float64)
    mse = []
    for s in candidates:
        blurred = np.stack([gaussian_filter(im, s, mode="mirror", truncate=math.ceil(3 * s) / s) for im in z])
        mse.append(((np.clip(blurred, 0, 1) - c) ** 2).mean())
    return float(candidates[int(np.argmin(mse))])


@pytest.mark.parametrize("noise", [0.1, 0.3, 0.6])
def test_choice_matches_an_independent_filter(noise):
    clean = smooth_digits()
    noisy = clean + noise * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    candidates = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]
    assert best_blur_sigma(clean, noisy, candidates) == scipy_choice(clean, noisy, candidates)


def test_more_noise_never_picks_a_narrower_blur():
    clean = smooth_digits()
    eps = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    candidates = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]
    chosen = [best_blur_sigma(clean, clean + s * eps, candidates) for s in (0.05, 0.3, 1.0)]
    assert chosen == sorted(chosen) and chosen[0] < chosen[-1]


def test_schedule_weight_rescales_ddpm_noise_to_the_clean_range():
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) eps with weight abar picks what (x_t / sqrt(abar)) with weight 1 picks."""
    clean = smooth_digits()
    eps = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    candidates = [0.25, 0.5, 1.0, 2.0, 3.0]
    chosen = []
    for abar in map(torch.tensor, (0.3, 0.9, 0.97)):
        x_t = abar.sqrt() * clean + (1 - abar).sqrt() * eps
        chosen.append(best_blur_sigma(clean, x_t, candidates, abar))
        assert chosen[-1] == best_blur_sigma(clean, x_t / abar.sqrt(), candidates)
    assert chosen == [3.0, 2.0, 1.0]  # less noise (larger abar), narrower blur


def test_first_of_equal_candidates_wins():
    clean = smooth_digits(2)
    assert best_blur_sigma(clean, clean.clone(), [1.0, 1.0, 2.0]) == 1.0
    assert isinstance(best_blur_sigma(clean, clean.clone(), [1, 2]), float)
