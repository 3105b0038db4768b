"""DDPM sampling (Algorithms B.2 / B.4) against an independent, hand-rolled loop written from the spec."""

import math

import pytest
import torch
from torch import nn

from difflab.models import build_model
from difflab.sampling import ddpm_one_step_denoise, ddpm_sample, frame_indices, noise_level_to_ddpm_input
from difflab.schedule import NoiseSchedule, sigma_to_timestep

T = 10
BETA_START, BETA_END = 1e-4, 0.02


pytestmark = pytest.mark.usefixtures("one_thread")


def schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(BETA_START, BETA_END, T)


class AnalyticTimeModel(nn.Module):
    """A fake eps_theta(x, t/T) with a closed form: eps = 0.3 x + 0.5 (t/T) - 0.1."""

    def forward(self, x, t):
        return 0.3 * x + 0.5 * t.reshape(-1, 1, 1, 1) - 0.1


def reference_sampler(eps_fn, n, seed, num_timesteps=T):
    """Algorithm B.2 as printed in the spec (1-based t = T..1), written with its own beta, alpha, abar lists:
    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t);
    x_{t-1} = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t + sqrt(beta_t) z.
    eps_fn(x, t0) gets the 0-based index t0 = t - 1. Noise is drawn in the same order as the sampler's."""
    betas = [BETA_START + (BETA_END - BETA_START) * i / (num_timesteps - 1) for i in range(num_timesteps)]
    abars, prod = [1.0], 1.0  # abars[t] for 1-based t; abars[0] = 1
    for beta in betas:
        prod *= 1.0 - beta
        abars.append(prod)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 1, 28, 28), generator=gen).double()
    for t in range(num_timesteps, 0, -1):
        beta, abar, abar_prev = betas[t - 1], abars[t], abars[t - 1]
        eps = eps_fn(x.float(), t - 1).double()
        z = torch.randn((n, 1, 28, 28), generator=gen).double() if t > 1 else torch.zeros_like(x)
        x0_hat = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        x = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0_hat + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x + math.sqrt(beta) * z
    return x.float()


def time_eps(model):
    return lambda x, t0: model(x, torch.full((x.shape[0],), t0 / T))


def class_eps(model, labels, gamma):
    """CFG with two SEPARATE forward passes (the sampler batches them into one)."""
    def fn(x, t0):
        t_in = torch.full((x.shape[0],), t0 / T)
        eps_c = model(x, nn.functional.one_hot(labels, 10).float(), t_in)
        eps_u = model(x, torch.zeros(x.shape[0], 10), t_in)
        return eps_u + gamma * (eps_c - eps_u)
    return fn


def tiny_class_model():
    torch.manual_seed(3)
    model = build_model("class", 8).eval()
    with torch.no_grad():  # random BatchNorm statistics instead of the identity of a fresh model
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model


class AnalyticClassModel(nn.Module):
    """A fake eps_theta(x, c, t/T) = 0.3 x + c W + 0.5 (t/T) - 0.1 with a fixed random W (10 x 784): the zero
    vector c gives the unconditional prediction, and the class shifts it clearly."""

    num_classes = 10

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn((10, 28 * 28), generator=torch.Generator().manual_seed(8)))

    def forward(self, x, c, t):
        return 0.3 * x + (c @ self.w).reshape(-1, 1, 28, 28) + 0.5 * t.reshape(-1, 1, 1, 1) - 0.1


def test_time_sampler_matches_hand_rolled_algorithm_b2():
    model = AnalyticTimeModel()
    images, _ = ddpm_sample(model, schedule(), 6, torch.Generator().manual_seed(5), "cpu", batch_size=4, show_progress=False)
    expected = reference_sampler(time_eps(model), 6, seed=5)
    assert images.shape == (6, 1, 28, 28)
    torch.testing.assert_close(images, expected, atol=1e-4, rtol=1e-4)


def test_time_sampler_with_a_unet_matches_reference_step_by_step_noise_included():
    torch.manual_seed(0)
    model = build_model("time", 8).eval()
    images, _ = ddpm_sample(model, schedule(), 5, torch.Generator().manual_seed(11), "cpu", show_progress=False)
    torch.testing.assert_close(images, reference_sampler(time_eps(model), 5, seed=11), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("make_model", [tiny_class_model, AnalyticClassModel])
def test_batched_cfg_equals_separate_forward_passes(gamma, make_model):
    model = make_model()
    labels = torch.tensor([0, 3, 7, 9, 2])
    images, _ = ddpm_sample(model, schedule(), 5, torch.Generator().manual_seed(2), "cpu", labels=labels,
                            guidance_scale=gamma, batch_size=3, show_progress=False)
    torch.testing.assert_close(images, reference_sampler(class_eps(model, labels, gamma), 5, seed=2), atol=1e-4, rtol=1e-4)


def test_cfg_gamma_one_is_conditional_and_gamma_zero_is_unconditional():
    model = AnalyticClassModel()
    labels = torch.tensor([1, 4, 8])

    def only(cond):
        def fn(x, t0):
            c = nn.functional.one_hot(labels, 10).float() if cond else torch.zeros(3, 10)
            return model(x, c, torch.full((3,), t0 / T))
        return fn

    run = lambda gamma: ddpm_sample(model, schedule(), 3, torch.Generator().manual_seed(4), "cpu", labels=labels,  # noqa: E731
                                    guidance_scale=gamma, show_progress=False)[0]
    torch.testing.assert_close(run(1.0), reference_sampler(only(True), 3, seed=4), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(run(0.0), reference_sampler(only(False), 3, seed=4), atol=1e-4, rtol=1e-4)
    # ... and guidance matters: gamma = 5 gives different images than gamma = 1.
    assert (run(5.0) - run(1.0)).abs().max() > 0.1
    assert (run(1.0) - run(0.0)).abs().max() > 0.1


def test_sampler_is_deterministic_and_independent_of_batch_size():
    torch.manual_seed(1)
    model = build_model("time", 8).eval()
    run = lambda seed, bs: ddpm_sample(model, schedule(), 7, torch.Generator().manual_seed(seed), "cpu", batch_size=bs, show_progress=False)[0]  # noqa: E731
    a = run(9, 7)
    assert torch.equal(a, run(9, 7))
    torch.testing.assert_close(a, run(9, 2), atol=1e-5, rtol=1e-5)
    assert (a - run(10, 7)).abs().max() > 0.1


class OutOfMemoryAbove(nn.Module):
    """Wraps a model and raises torch.OutOfMemoryError for batches larger than `limit`."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.sizes = model, limit, []

    def forward(self, x, t):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model(x, t)


def test_out_of_memory_halves_the_batch_and_gives_the_same_samples(capsys):
    model = AnalyticTimeModel()
    wrapped = OutOfMemoryAbove(model, limit=3)
    images, _ = ddpm_sample(wrapped, schedule(), 8, torch.Generator().manual_seed(5), "cpu", batch_size=8, show_progress=False)
    expected, _ = ddpm_sample(model, schedule(), 8, torch.Generator().manual_seed(5), "cpu", batch_size=8, show_progress=False)
    torch.testing.assert_close(images, expected)
    assert max(wrapped.sizes[2:]) <= 2  # 8 fails, 4 fails, then batches of 2
    assert "retrying with batch size 4" in capsys.readouterr().err


def test_other_runtime_errors_are_not_swallowed():
    class Broken(nn.Module):
        def forward(self, x, t):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        ddpm_sample(Broken(), schedule(), 2, torch.Generator().manual_seed(0), "cpu", show_progress=False)


def test_frames_run_from_noise_to_the_final_sample():
    model = AnalyticTimeModel()
    images, frames = ddpm_sample(model, schedule(), 3, torch.Generator().manual_seed(5), "cpu", frames=4, show_progress=False)
    x_start = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(5))
    assert len(frames) == 4
    torch.testing.assert_close(frames[0], x_start.clamp(0, 1))
    torch.testing.assert_close(frames[-1], images.clamp(0, 1))
    assert frame_indices(T, 4) == {0, 3, 7, 10}
    assert frame_indices(T, 1) == {T} and frame_indices(T, 0) == set()
    assert len(frame_indices(300, 40)) == 40


def test_class_sampling_requires_a_guidance_scale():
    with pytest.raises(ValueError, match="guidance_scale"):
        ddpm_sample(tiny_class_model(), schedule(), 2, torch.Generator(), "cpu", labels=torch.tensor([0, 1]), show_progress=False)


def test_sigma_maps_to_the_nearest_timestep():
    s = NoiseSchedule.linear(1e-4, 0.02, 300)
    abar = s.alphas_cumprod.double()
    ratio = (1 - abar) / abar  # the variance of x_t / sqrt(abar_t) around x0
    for sigma in [0.0, 0.05, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0, 3.0]:
        t = sigma_to_timestep(sigma, s)
        gaps = (ratio - sigma**2).abs()
        assert gaps[t] == gaps.min()
        assert all(gaps[t] <= gaps[u] for u in (max(t - 1, 0), min(t + 1, 299)))
    assert sigma_to_timestep(0.0, s) == 0
    assert sigma_to_timestep(100.0, s) == 299


def test_one_step_ddpm_denoiser_recovers_x0_with_an_oracle_at_an_exact_noise_level():
    s = schedule()
    t = 6
    abar = s.alphas_cumprod[t].item()
    sigma = math.sqrt((1 - abar) / abar)  # exactly the noise level of timestep t
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.rand((4, 1, 28, 28), generator=gen), torch.randn((4, 1, 28, 28), generator=gen)
    z = x0 + sigma * eps

    class Oracle(nn.Module):
        def forward(self, x, t_in):
            assert torch.allclose(t_in, torch.full_like(t_in, t / T))
            return eps[: x.shape[0]]

    x_t, t_found = noise_level_to_ddpm_input(z, sigma, s)
    assert t_found == t
    torch.testing.assert_close(x_t, math.sqrt(abar) * z)
    x0_hat, t_used = ddpm_one_step_denoise(Oracle(), z, sigma, s, batch_size=4)
    assert t_used == t
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=1e-5)
