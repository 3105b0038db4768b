"""The DDPM equations in difflab.schedule against closed forms derived independently here."""

import math

import pytest
import torch

from difflab.schedule import (
    NoiseSchedule,
    classifier_free_guidance,
    forward_noise,
    linear_betas,
    posterior_mean,
    posterior_variance,
    predict_x0,
    reverse_step,
    sigma_to_timestep,
    step_beta,
    strided_timesteps,
)

SCHEDULE = NoiseSchedule.linear(1e-4, 0.02, 300)


def test_linear_betas_match_the_spec():
    betas = linear_betas(1e-4, 0.02, 300)
    assert betas.shape == (300,)
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(betas[1:] - betas[:-1], torch.full((299,), (0.02 - 1e-4) / 299), atol=1e-9)


def test_alphas_cumprod_is_the_running_product():
    betas = linear_betas(1e-4, 0.02, 300).double()
    product, expected = 1.0, []
    for beta in betas.tolist():
        product *= 1.0 - beta
        expected.append(product)
    assert torch.allclose(SCHEDULE.alphas_cumprod.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6)
    assert SCHEDULE.abar(torch.tensor([-1, 0, 299])).flatten().tolist() == pytest.approx([1.0, expected[0], expected[-1]], rel=1e-6)


def test_forward_noise_has_the_closed_form_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7)
    abar = torch.tensor(0.3)
    x_t = forward_noise(x0, abar, torch.randn(x0.shape, generator=g))
    assert x_t.mean().item() == pytest.approx(math.sqrt(0.3) * 0.7, abs=5e-3)
    assert x_t.var().item() == pytest.approx(0.7, abs=5e-3)


def test_predict_x0_inverts_the_forward_process():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.rand(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
    abar = SCHEDULE.abar(torch.tensor([0, 50, 150, 299]))
    assert torch.allclose(predict_x0(forward_noise(x0, abar, eps), eps, abar), x0, atol=1e-4)


def gaussian_posterior(x0, x_t, abar_prev, alpha):
    """q(x_prev | x_t, x0) by multiplying the Gaussians q(x_prev | x0) and q(x_t | x_prev)."""
    beta = 1 - alpha
    precision = 1 / (1 - abar_prev) + alpha / beta
    mean = (math.sqrt(abar_prev) * x0 / (1 - abar_prev) + math.sqrt(alpha) * x_t / beta) / precision
    return mean, 1 / precision


@pytest.mark.parametrize("t,t_prev", [(10, 9), (200, 199), (290, 280), (150, 60)])
def test_posterior_matches_product_of_gaussians(t, t_prev):
    abar_t = SCHEDULE.alphas_cumprod[t].double()
    abar_prev = SCHEDULE.alphas_cumprod[t_prev].double()
    x0, x_t = torch.tensor(0.3, dtype=torch.float64), torch.tensor(-0.8, dtype=torch.float64)
    mean, var = gaussian_posterior(x0.item(), x_t.item(), abar_prev.item(), (abar_t / abar_prev).item())
    assert posterior_mean(x_t, x0, abar_t, abar_prev).item() == pytest.approx(mean, rel=1e-9)
    assert posterior_variance(abar_t, abar_prev).item() == pytest.approx(var, rel=1e-9)


def test_last_reverse_step_returns_the_clean_estimate():
    # Below t = 0 abar is 1: x_{-1} = x0_hat exactly, whatever the noise term.
    abar_t, abar_prev = SCHEDULE.abar(0), SCHEDULE.abar(-1)
    x_t, eps = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    out = reverse_step(x_t, eps, abar_t, abar_prev, torch.zeros(()), torch.zeros_like(x_t))
    assert torch.allclose(out, predict_x0(x_t, eps, abar_t), atol=1e-5)
    assert step_beta(abar_t, abar_prev).item() == pytest.approx(1e-4, rel=1e-3)


def test_cfg_interpolates_and_extrapolates():
    eu, ec = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.equal(classifier_free_guidance(eu, ec, 0.0), eu)
    assert torch.allclose(classifier_free_guidance(eu, ec, 1.0), ec)
    assert torch.allclose(classifier_free_guidance(eu, ec, 5.0), eu + 5 * (ec - eu))


def test_sigma_to_timestep_inverts_the_noise_ratio():
    for t in (0, 17, 120, 299):
        abar = SCHEDULE.alphas_cumprod[t].double().item()
        assert sigma_to_timestep(math.sqrt((1 - abar) / abar), SCHEDULE) == t
    assert sigma_to_timestep(0.0, SCHEDULE) == 0


def test_strided_timesteps_match_the_deepfloyd_scheme():
    ts = strided_timesteps(1000, 30)
    assert ts[:3] == [990, 960, 930] and ts[-1] == 0 and len(ts) == 34
    assert strided_timesteps(300, 1) == list(range(299, -1, -1))
    with pytest.raises(ValueError):
        strided_timesteps(300, 0)
