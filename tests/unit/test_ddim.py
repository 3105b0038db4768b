"""DDIM (Song et al. 2021 eq 12/16) as a step of the one reverse loop: closed forms, and equality with diffusers'
DDIMScheduler.step on the same inputs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from difflab.sampler import ddim_eta_of, reverse
from difflab.schedule import (
    NoiseSchedule,
    ddim_step,
    forward_noise,
    posterior_variance,
    reverse_step,
    strided_timesteps,
)

T = 300
SCHEDULE = NoiseSchedule.linear(1e-4, 0.02, T)


def pair(t: int, t_prev: int) -> tuple[torch.Tensor, torch.Tensor]:
    return SCHEDULE.abar(t), SCHEDULE.abar(t_prev)


def tensors(seed: int, n: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn((n, 1, 8, 8), generator=g, dtype=torch.float64) for _ in range(3))


timestep_pairs = st.integers(1, T - 1).flatmap(lambda t: st.tuples(st.just(t), st.integers(-1, t - 1)))


@settings(max_examples=60, deadline=None)
@given(pair_=timestep_pairs, seed=st.integers(0, 2**16))
def test_eta_one_is_the_ddpm_posterior_step_with_the_posterior_variance(pair_, seed):
    t, t_prev = pair_
    abar_t, abar_prev = (a.double() for a in pair(t, t_prev))
    x_t, eps, z = tensors(seed)
    std = posterior_variance(abar_t, abar_prev).sqrt()
    ddpm = reverse_step(x_t, eps, abar_t, abar_prev, std, z)
    assert torch.allclose(ddim_step(x_t, eps, abar_t, abar_prev, 1.0, z), ddpm, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(pair_=timestep_pairs, seed=st.integers(0, 2**16))
def test_eta_zero_with_the_true_noise_lands_exactly_on_the_forward_process(pair_, seed):
    """x_t = q(x_t | x0, eps) and eps_hat = eps: the deterministic step gives q(x_t' | x0, eps) with the same eps,
    i.e. sqrt(abar_t') x0 + sqrt(1 - abar_t') eps (the clean x0 itself at t' = -1)."""
    t, t_prev = pair_
    abar_t, abar_prev = (a.double() for a in pair(t, t_prev))
    x0, eps, z = tensors(seed)
    x_t = forward_noise(x0, abar_t, eps)
    expected = forward_noise(x0, abar_prev, eps)
    assert torch.allclose(ddim_step(x_t, eps, abar_t, abar_prev, 0.0, z), expected, rtol=1e-9, atol=1e-9)


def test_eta_zero_chain_reproduces_x0_with_an_oracle_noise_estimate():
    """The whole loop (strided, DDIM eta = 0) with eps_hat = the true eps of x_T recovers x0 to float precision."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((4, 1, 8, 8), generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    ts = strided_timesteps(T, 30) + [-1]
    x = forward_noise(x0, SCHEDULE.abar(ts[0]), eps)
    out = reverse(x, ts, SCHEDULE, lambda x_t, t: (eps, None), torch.Generator().manual_seed(1), "beta", ddim_eta=0.0)
    assert torch.allclose(out, x0, atol=1e-5)


def test_the_step_variance_is_eta_squared_times_the_posterior_variance():
    abar_t, abar_prev = (a.double() for a in pair(200, 170))
    x_t, eps, _ = tensors(5)
    zero = torch.zeros_like(x_t)
    for eta in (0.3, 0.7, 1.0):
        unit = torch.ones_like(x_t)
        spread = ddim_step(x_t, eps, abar_t, abar_prev, eta, unit) - ddim_step(x_t, eps, abar_t, abar_prev, eta, zero)
        expected = eta * posterior_variance(abar_t, abar_prev).sqrt()
        assert torch.allclose(spread, expected.expand_as(spread), rtol=1e-12)


def test_loop_with_eta_one_equals_the_posterior_ddpm_loop_draw_for_draw():
    ts = strided_timesteps(T, 10) + [-1]
    x = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    noise_fn = lambda x_t, t: (0.1 * x_t + 0.01 * t, None)
    ddpm = reverse(x, ts, SCHEDULE, noise_fn, torch.Generator().manual_seed(4), "posterior")
    ddim = reverse(x, ts, SCHEDULE, noise_fn, torch.Generator().manual_seed(4), "beta", ddim_eta=1.0)
    assert torch.allclose(ddim, ddpm, atol=1e-5)


def test_sampler_choice_maps_to_the_loop_argument():
    assert ddim_eta_of("ddpm", 0.5) is None
    assert ddim_eta_of("ddim", 0.0) == 0.0
    with pytest.raises(ValueError, match="sampler"):
        ddim_eta_of("euler", 0.0)
    with pytest.raises(ValueError, match="ddim_eta"):
        ddim_eta_of("ddim", -0.1)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("num_steps", [10, 30, 100])
def test_equals_diffusers_ddim_scheduler_step(eta, num_steps):
    """diffusers' step goes from t to t - T // num_inference_steps; its 'leading' list is difflab's strided list."""
    from diffusers import DDIMScheduler

    betas = 1.0 - SCHEDULE.alphas_cumprod / torch.cat([torch.ones(1), SCHEDULE.alphas_cumprod[:-1]])
    sched = DDIMScheduler(num_train_timesteps=T, trained_betas=betas.numpy(), set_alpha_to_one=True,
                          clip_sample=False, prediction_type="epsilon", timestep_spacing="leading")
    sched.set_timesteps(num_steps)
    ours = strided_timesteps(T, T // num_steps)
    assert sched.timesteps.tolist() == ours
    assert torch.allclose(sched.alphas_cumprod, SCHEDULE.alphas_cumprod, rtol=1e-5)
    g = torch.Generator().manual_seed(num_steps)
    for t, t_prev in zip(ours[:3] + ours[-2:], ours[1:4] + ours[-1:] + [-1]):
        x_t, eps, z = (torch.randn((2, 1, 8, 8), generator=g) for _ in range(3))
        theirs = sched.step(eps, t, x_t, eta=eta, variance_noise=z).prev_sample
        abar_t, abar_prev = pair(t, t_prev)
        ref_abar_t = sched.alphas_cumprod[t].reshape(1, 1, 1, 1)  # the schedule diffusers used, to isolate the step
        ref_abar_prev = (sched.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)).reshape(1, 1, 1, 1)
        assert torch.allclose(ddim_step(x_t, eps, ref_abar_t, ref_abar_prev, eta, z), theirs, rtol=1e-5, atol=1e-5)
        assert torch.allclose(ddim_step(x_t, eps, abar_t, abar_prev, eta, z), theirs, rtol=1e-3, atol=1e-3)
