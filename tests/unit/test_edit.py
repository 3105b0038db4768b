"""Part A algorithms against their formulas, with a fake analytic Denoiser (a fixed linear map), plus the MNIST
backend (a tiny random checkpoint saved through the real code path) and the input images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from difflab import DifflabError
from difflab.checkpoint import save_checkpoint
from helpers.factories import unet_payload
from difflab.edit import algorithms as A
from difflab.edit import inputs
from difflab.edit import views as V
from difflab.edit.backends import load_backend
from difflab.edit.backends.mnist import MnistDenoiser, parse_digit_prompt
from difflab.edit.denoiser import Denoiser
from difflab.models import build_model
from difflab.schedule import alphas_cumprod_from_betas, linear_betas

H = W = 8
D = H * W
PROMPTS = {"p0": 0, "p1": 1, "p2": 2}


def flip_matrix(mode: str) -> torch.Tensor:
    """The permutation F with FLIPS[mode].view(x).flatten() == x.flatten() @ F."""
    return V.FLIPS[mode].view(torch.eye(D).reshape(D, 1, H, W)).reshape(D, D)


class LinearDenoiser:
    """eps(x, t, c) = a_t (x M^T) + c P: analytic, cheap, and flip-equivariant when symmetrised.

    Counts its forward passes so tests can check that guidance batches its model calls.
    """

    image_shape = (1, H, W)
    value_range = (0.0, 1.0)
    device = torch.device("cpu")

    def __init__(self, T: int = 40, symmetric: str | None = None, seed: int = 0, variance: float | None = None):
        g = torch.Generator().manual_seed(seed)
        self.betas = linear_betas(1e-3, 0.1, T)
        self.alphas_cumprod = alphas_cumprod_from_betas(self.betas)
        self.a = torch.linspace(0.5, 1.5, T)
        self.M = torch.randn(D, D, generator=g) / 8
        self.P = torch.randn(len(PROMPTS), D, generator=g)
        if symmetric:
            F = flip_matrix(symmetric)
            self.M = (self.M + F @ self.M @ F) / 2
            self.P = (self.P + self.P @ F) / 2
        self.variance = variance
        self.calls: list[int] = []

    def predict_noise(self, x_t, t, cond):
        self.calls.append(x_t.shape[0])
        eps = self.a[t] * x_t.flatten(1) @ self.M.T + cond @ self.P
        v = None if self.variance is None else torch.full_like(x_t, self.variance)
        return eps.reshape(x_t.shape), v

    def encode(self, prompt):
        return torch.nn.functional.one_hot(torch.tensor([PROMPTS[prompt]]), len(PROMPTS)).float()

    def null_condition(self, batch):
        return torch.zeros(batch, len(PROMPTS))


class OracleDenoiser(LinearDenoiser):
    """Predicts the exact noise for a known clean image: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""

    def __init__(self, x0, **kw):
        super().__init__(**kw)
        self.x0 = x0

    def predict_noise(self, x_t, t, cond):
        abar = self.alphas_cumprod[t]
        return (x_t - abar.sqrt() * self.x0) / (1 - abar).sqrt(), None


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, H, W, generator=gen(seed))


# --- schedule plumbing ----------------------------------------------------------------------------------------


def test_fake_satisfies_the_protocol():
    assert isinstance(LinearDenoiser(), Denoiser)


def test_denoising_timesteps_follow_the_writeup_and_end_clean():
    ts = A.denoising_timesteps(1000, 30)
    assert ts[:3] == [990, 960, 930] and ts[-2:] == [0, -1] and len(ts) == 35
    assert ts[10] == 690  # i_start = 10 in the writeup
    assert [ts[i] for i in (1, 3, 5, 7, 10, 20)] == [960, 900, 840, 780, 690, 390]
    assert A.denoising_timesteps(300, 10, start=75) == list(range(75, -1, -10)) + [-1]
    for n in (1, 7, 10, 20, 30, 300):
        steps = len(A.denoising_timesteps(300, A.stride_for_steps(300, n))) - 1
        assert steps == n


def test_forward_matches_closed_form_and_is_identity_below_zero():
    den = LinearDenoiser()
    x0 = images()
    for t in (0, 17, 39):
        got = A.forward(den, x0, t, gen(5))
        eps = torch.randn(x0.shape, generator=gen(5))
        abar = float(torch.prod(1 - linear_betas(1e-3, 0.1, 40).double()[: t + 1]))
        torch.testing.assert_close(got, abar**0.5 * x0 + (1 - abar) ** 0.5 * eps)
    assert torch.equal(A.forward(den, x0, -1, gen(5)), x0)


def test_step_variance_choices_match_their_closed_forms():
    from difflab.sampler import step_variance

    abar_t, abar_prev = torch.tensor(0.3), torch.tensor(0.5)
    beta = 1 - 0.3 / 0.5
    beta_tilde = (1 - 0.5) / (1 - 0.3) * beta
    torch.testing.assert_close(step_variance("beta", None, abar_t, abar_prev), torch.tensor(beta))
    torch.testing.assert_close(step_variance("posterior", torch.tensor(1.0), abar_t, abar_prev), torch.tensor(beta_tilde))
    torch.testing.assert_close(step_variance("auto", None, abar_t, abar_prev), torch.tensor(beta_tilde))
    # learned range: v = -1 gives beta_tilde, v = 1 beta, v = 0 their geometric mean (iDDPM eq 15)
    for variance in ("auto", "learned_range"):
        torch.testing.assert_close(step_variance(variance, torch.tensor(-1.0), abar_t, abar_prev), torch.tensor(beta_tilde))
        torch.testing.assert_close(step_variance(variance, torch.tensor(1.0), abar_t, abar_prev), torch.tensor(beta))
        torch.testing.assert_close(step_variance(variance, torch.tensor(0.0), abar_t, abar_prev), torch.tensor((beta * beta_tilde) ** 0.5))
    with pytest.raises(ValueError, match="needs a model that returns"):
        step_variance("learned_range", None, abar_t, abar_prev)
    with pytest.raises(ValueError, match="unknown variance"):
        step_variance("fixed_large", None, abar_t, abar_prev)


# --- denoising ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 20, 39])
def test_strided_step_at_stride_1_is_the_ddpm_posterior_step(t):
    """One step t -> t-1 equals DDPM eq. 11: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma z,
    sigma^2 = beta_tilde_t, with beta_t taken from the linear schedule itself."""
    den = LinearDenoiser()
    x_t = torch.randn(4, 1, H, W, generator=gen(2))
    cond = den.encode("p1")
    got = A.iterative_denoise(den, x_t, 0, [t, t - 1], cond, gen(3))
    beta = den.betas.double()[t]
    abar = torch.cumprod(1 - den.betas.double(), 0)
    eps = den.predict_noise(x_t, t, cond.expand(4, -1))[0].double()
    mean = (x_t.double() - beta / (1 - abar[t]).sqrt() * eps) / (1 - beta).sqrt()
    var = (1 - abar[t - 1]) / (1 - abar[t]) * beta
    z = torch.randn(x_t.shape, generator=gen(3)).double()
    torch.testing.assert_close(got.double(), mean + var.sqrt() * z, atol=2e-5, rtol=1e-4)


def test_last_step_lands_on_the_one_step_estimate_without_noise():
    den = LinearDenoiser()
    x_t = torch.randn(2, 1, H, W, generator=gen(2))
    null = den.null_condition(2)
    got = A.iterative_denoise(den, x_t, 0, [0, -1], null, gen(3))
    torch.testing.assert_close(got, A.one_step_denoise(den, x_t, 0, null))


def test_one_step_denoise_inverts_the_forward_process():
    x0 = images()
    den = OracleDenoiser(x0)
    for t in (0, 10, 39):
        x_t = A.forward(den, x0, t, gen(t))
        torch.testing.assert_close(A.one_step_denoise(den, x_t, t, den.null_condition(3)), x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride,i_start", [(1, 0), (7, 0), (7, 3), (13, 2)])
def test_iterative_denoising_with_an_exact_noise_predictor_returns_the_clean_image(stride, i_start):
    x0 = images()
    den = OracleDenoiser(x0)
    ts = A.denoising_timesteps(40, stride)
    x_t = A.forward(den, x0, ts[i_start], gen(9))
    out = A.iterative_denoise(den, x_t, i_start, ts, den.null_condition(3), gen(10))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_callback_sees_every_state_in_order():
    den = LinearDenoiser()
    ts = A.denoising_timesteps(40, 10)
    seen = []
    A.iterative_denoise(den, torch.randn(1, 1, H, W), 1, ts, den.null_condition(1), gen(0),
                        callback=lambda i, t, x: seen.append((i, t)))
    assert seen == [(i, ts[i]) for i in range(2, len(ts))]


def test_learned_variance_is_used_when_the_model_has_one():
    x_t = torch.randn(2, 1, H, W, generator=gen(2))
    plain = A.iterative_denoise(LinearDenoiser(), x_t, 0, [30, 20], torch.zeros(1, 3), gen(4))
    low = A.iterative_denoise(LinearDenoiser(variance=-1.0), x_t, 0, [30, 20], torch.zeros(1, 3), gen(4))
    high = A.iterative_denoise(LinearDenoiser(variance=1.0), x_t, 0, [30, 20], torch.zeros(1, 3), gen(4))
    torch.testing.assert_close(low, plain)  # v = -1 is the posterior variance
    abar = LinearDenoiser().alphas_cumprod
    beta, beta_tilde = 1 - abar[30] / abar[20], (1 - abar[20]) / (1 - abar[30]) * (1 - abar[30] / abar[20])
    z = torch.randn(x_t.shape, generator=gen(4))
    torch.testing.assert_close(high - plain, (beta.sqrt() - beta_tilde.sqrt()) * z, atol=1e-5, rtol=1e-4)


# --- guidance ------------------------------------------------------------------------------------------------


def test_cfg_at_scale_one_is_the_conditional_prediction_and_zero_the_unconditional():
    den = LinearDenoiser()
    x = torch.randn(3, 1, H, W, generator=gen(1))
    cond = den.encode("p2")
    eps_c = den.predict_noise(x, 5, cond.expand(3, -1))[0]
    eps_u = den.predict_noise(x, 5, den.null_condition(3))[0]
    torch.testing.assert_close(A.cfg_noise(den, x, 5, cond, 1.0)[0], eps_c)
    torch.testing.assert_close(A.cfg_noise(den, x, 5, cond, 0.0)[0], eps_u)
    torch.testing.assert_close(A.cfg_noise(den, x, 5, cond, 7.0)[0], eps_u + 7.0 * (eps_c - eps_u))
    torch.testing.assert_close(A.cfg_noise(den, x, 5, cond, None)[0], eps_c)


def anagram(den, x, c1, c2, mode):
    return V.multi_view_noise(den, x, 9, V.anagram_views(mode), [c1, c2], 7.0, "mean")


def hybrid(den, x, c1, c2, kernel_size=5, sigma=1.0):
    return V.multi_view_noise(den, x, 9, V.hybrid_views(kernel_size, sigma), [c1, c2], 7.0, "sum")


def test_guidance_runs_conditional_and_unconditional_halves_in_one_forward_pass():
    den = LinearDenoiser()
    x = torch.randn(3, 1, H, W)
    A.cfg_noise(den, x, 5, den.encode("p1"), 7.0)
    anagram(den, x, den.encode("p1"), den.encode("p2"), "vertical")
    hybrid(den, x, den.encode("p1"), den.encode("p2"), 3, 1.0)
    assert den.calls == [6, 12, 12]


@pytest.mark.parametrize("mode", list(V.FLIPS))
def test_flips_are_involutions_and_rotate180_flips_both_axes(mode):
    x = torch.randn(2, 1, H, W, generator=gen(1))
    flip = V.FLIPS[mode]
    assert torch.equal(flip.inverse_view(flip.view(x)), x) and not torch.equal(flip.view(x), x)
    assert torch.equal(V.FLIPS["vertical"].view(x)[..., 0, :], x[..., -1, :])
    assert torch.equal(V.FLIPS["rotate180"].view(x)[..., 0, 0], x[..., -1, -1])


@pytest.mark.parametrize("variance", [None, 0.3])
@pytest.mark.parametrize("mode", list(V.FLIPS))
def test_anagram_noise_matches_its_formula_bit_for_bit(mode, variance):
    """eps = (eps_1 + f(eps_2)) / 2, the variance the same way: exactly the numbers of the pre-views code."""
    den = LinearDenoiser(variance=variance)
    x = torch.randn(2, 1, H, W, generator=gen(1))
    c1, c2 = den.encode("p1"), den.encode("p2")
    flip = V.FLIPS[mode]
    e1, v1 = A.cfg_noise(den, x, 9, c1, 7.0)
    e2, v2 = A.cfg_noise(den, flip.view(x), 9, c2, 7.0)
    eps, var = anagram(den, x, c1, c2, mode)
    assert torch.equal(eps, (e1 + flip.view(e2)) / 2)
    assert var is None if variance is None else torch.equal(var, (v1 + flip.view(v2)) / 2)


@pytest.mark.parametrize("mode", list(V.FLIPS))
def test_anagram_with_equal_prompts_is_flip_symmetric(mode):
    x = torch.randn(2, 1, H, W, generator=gen(1))
    c = LinearDenoiser().encode("p1")
    flip, views = V.FLIPS[mode], V.anagram_views(mode)
    # any model: the noise estimate commutes with the flip
    den = LinearDenoiser()
    eps = anagram(den, x, c, c, mode)[0]
    eps_of_flip = anagram(den, flip.view(x), c, c, mode)[0]
    torch.testing.assert_close(eps_of_flip, flip.view(eps))
    # a flip-symmetric model: the anagram is plain CFG sampling, and a flip-symmetric x_T gives a flip-symmetric mean path
    sym = LinearDenoiser(symmetric=mode)
    torch.testing.assert_close(anagram(sym, x, c, c, mode)[0], A.cfg_noise(sym, x, 9, c, 7.0)[0])
    ts = A.denoising_timesteps(40, 8)
    got = V.multi_view_sample(sym, x, ts, views, [c, c], gen(6), 7.0, "mean")
    torch.testing.assert_close(got, A.iterative_denoise(sym, x, 0, ts, c, gen(6), 7.0), atol=1e-5, rtol=1e-5)
    x_sym = (x + flip.view(x)) / 2
    out = V.multi_view_sample(sym, x_sym, [20, -1], views, [c, c], gen(6), 7.0, "mean")  # a last step adds no noise
    torch.testing.assert_close(out, flip.view(out), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(x, flip.view(x))


def test_hybrid_with_the_same_prompt_twice_is_plain_cfg():
    den = LinearDenoiser()
    x = torch.randn(2, 1, H, W, generator=gen(1))
    c = den.encode("p1")
    ts = A.denoising_timesteps(40, 5)
    got = V.multi_view_sample(den, x, ts, V.hybrid_views(5, 1.0), [c, c], gen(7), 7.0, "sum")
    torch.testing.assert_close(got, A.iterative_denoise(den, x, 0, ts, c, gen(7), 7.0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variance", [None, 0.3])
def test_hybrid_noise_matches_its_formula_bit_for_bit(variance):
    """eps = lowpass(eps_1) + highpass(eps_2) and the mean of the two variances, as the pre-views code computed."""
    den = LinearDenoiser(variance=variance)
    x = torch.randn(2, 1, H, W, generator=gen(1))
    c1, c2 = den.encode("p1"), den.encode("p2")
    (e1, v1), (e2, v2) = A.cfg_noise(den, x, 9, c1, 7.0), A.cfg_noise(den, x, 9, c2, 7.0)
    eps, var = hybrid(den, x, c1, c2)
    assert torch.equal(eps, A.lowpass(e1, 5, 1.0) + A.highpass(e2, 5, 1.0))
    assert var is None if variance is None else torch.equal(var, (v1 + v2) / 2)
    torch.testing.assert_close(eps, A.lowpass(e1, 5, 1.0) + (e2 - A.lowpass(e2, 5, 1.0)))
    assert not torch.allclose(eps, e1) and not torch.allclose(eps, e2)


def test_multi_view_noise_refuses_unknown_reductions_and_mismatched_conditions():
    den = LinearDenoiser()
    x = torch.randn(1, 1, H, W)
    with pytest.raises(ValueError, match="reduction"):
        V.multi_view_noise(den, x, 9, V.anagram_views("vertical"), [den.encode("p1")] * 2, 7.0, "max")
    with pytest.raises(ValueError, match="2 views but 1 conditions"):
        V.multi_view_noise(den, x, 9, V.anagram_views("vertical"), [den.encode("p1")], 7.0)


# --- SDEdit and inpainting ------------------------------------------------------------------------------------


def test_sdedit_i_start_is_an_index_of_a_timestep_t_ge_0():
    """check_i_start is the one bound (config validation uses it too): 0 .. len - 2; the last entry, -1, is the
    clean image and no place to start from."""
    den = LinearDenoiser()
    x0 = images()
    ts = A.denoising_timesteps(40, 5)
    assert ts[-2] == 0 and ts[-1] == -1
    assert not torch.allclose(A.sdedit(den, x0, len(ts) - 3, ts, den.encode("p1"), gen(2), cfg_scale=7.0), x0)
    A.sdedit(den, x0, len(ts) - 2, ts, den.encode("p1"), gen(2), cfg_scale=7.0)  # from t = 0: one step
    for bad in (len(ts) - 1, -1):
        with pytest.raises(ValueError, match=rf"0\.\.{len(ts) - 2}"):
            A.sdedit(den, x0, bad, ts, den.encode("p1"), gen(2), cfg_scale=7.0)


def test_sdedit_is_forward_noise_then_iterative_denoising():
    den = LinearDenoiser()
    x0 = images()
    ts = A.denoising_timesteps(40, 5)
    g = gen(3)
    x_t = A.forward(den, x0, ts[2], g)
    want = A.iterative_denoise(den, x_t, 2, ts, den.encode("p0"), g, 3.0)
    torch.testing.assert_close(A.sdedit(den, x0, 2, ts, den.encode("p0"), gen(3), cfg_scale=3.0), want)


def test_inpainting_keeps_the_unmasked_region_noised_original_at_every_step_and_original_at_the_end():
    den = LinearDenoiser()
    x_orig = images(2)
    mask = torch.zeros(1, 1, H, W)
    mask[..., 2:5, 1:6] = 1
    ts = A.denoising_timesteps(40, 6)
    states = []
    out = A.inpaint(den, x_orig, mask, ts, den.encode("p1"), gen(11), 7.0, callback=lambda i, t, x: states.append((t, x)))
    # replay the documented draws: eps for the start, then per step z and the forward noise
    g = gen(11)
    eps0 = torch.randn(x_orig.shape, generator=g)
    keep = mask == 0
    abar = torch.cat([torch.ones(1), den.alphas_cumprod])
    assert len(states) == len(ts) - 1
    for t, x in states:
        torch.randn(x_orig.shape, generator=g)  # z
        e = torch.randn(x_orig.shape, generator=g)
        want = abar[t + 1].sqrt() * x_orig + (1 - abar[t + 1]).sqrt() * e
        torch.testing.assert_close(x.expand_as(x_orig)[keep.expand_as(x_orig)], want[keep.expand_as(x_orig)])
    assert torch.equal(out[keep.expand_as(out)], x_orig[keep.expand_as(x_orig)])
    assert eps0.shape == x_orig.shape
    assert not torch.allclose(out[~keep.expand_as(out)], x_orig[~keep.expand_as(x_orig)])


# --- filters --------------------------------------------------------------------------------------------------


def test_lowpass_plus_highpass_is_identity_and_lowpass_keeps_constants():
    x = torch.randn(2, 1, 28, 28, generator=gen(0))
    torch.testing.assert_close(A.lowpass(x, 15, 0.875) + A.highpass(x, 15, 0.875), x)
    flat = torch.full((1, 1, 28, 28), 0.3)
    torch.testing.assert_close(A.lowpass(flat, 15, 2.0), flat)
    assert A.lowpass(x, 15, 2.0).std() < 0.5 * x.std()


def test_filters_scale_with_image_size():
    assert A.scale_blur_to_size(33, 2.0, 28, 64) == (15, 0.875)
    assert A.scale_blur_to_size(33, 2.0, 64, 64) == (33, 2.0)
    assert A.scale_blur_to_size(33, 2.0, 4, 64)[0] == 3
    assert A.gaussian_kernel_size(2.0) == 13 and A.gaussian_kernel_size(0.5) == 5


def test_blur_denoise_rescales_then_blurs():
    x0 = torch.full((1, 1, 28, 28), 0.4)
    abar = torch.tensor(0.25).reshape(1, 1, 1, 1)
    torch.testing.assert_close(A.blur_denoise(abar.sqrt() * x0, abar, 1.0), x0)


# --- the MNIST backend ---------------------------------------------------------------------------------------


@pytest.fixture
def class_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("class", 8)
    path = tmp_path / "epoch_3.pt"
    save_checkpoint(path, unet_payload("class", model.state_dict(), epoch=3, num_timesteps=300, beta_start=1e-4,
                                       beta_end=0.02, p_uncond=0.1))
    return path, model.eval()


def test_mnist_backend_calls_the_model_with_t_over_T(class_checkpoint):
    path, model = class_checkpoint
    den = load_backend("mnist", path)
    assert isinstance(den, MnistDenoiser) and isinstance(den, Denoiser)
    assert den.epoch == 3 and den.alphas_cumprod.shape == (300,)
    torch.testing.assert_close(den.alphas_cumprod, alphas_cumprod_from_betas(torch.linspace(1e-4, 0.02, 300)))
    x = torch.randn(5, 1, 28, 28, generator=gen(0))
    cond = torch.cat([den.encode("a 3"), den.null_condition(4)])
    with torch.no_grad():
        want = model(x, cond, torch.full((5,), 120 / 300))
    den.batch_size = 2  # chunked forward passes give the same numbers
    seen = []
    den.model.register_forward_pre_hook(lambda module, args: seen.append(args))
    eps, var = den.predict_noise(x, 120, cond)
    assert var is None
    torch.testing.assert_close(eps, want)
    assert [a[0].shape[0] for a in seen] == [2, 2, 1]
    assert torch.equal(torch.cat([a[1] for a in seen]), cond)
    assert torch.equal(torch.cat([a[2] for a in seen]), torch.full((5,), 120 / 300))


def test_mnist_backend_out_of_memory_retries_with_smaller_batches(class_checkpoint, capsys):
    path, model = class_checkpoint
    den = load_backend("mnist", path)
    x = torch.randn(8, 1, 28, 28, generator=gen(1))
    cond = den.one_hot(range(8))
    with torch.no_grad():
        want = model(x, cond, torch.full((8,), 60 / 300))

    def fail_above_three(module, args):
        if args[0].shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    den.model.register_forward_pre_hook(fail_above_three)
    eps, _ = den.predict_noise(x, 60, cond)
    torch.testing.assert_close(eps, want)
    assert den.batch_size == 2  # the chunk of 8 -> 4 -> 2, kept for the next call
    assert "out of memory in the MNIST backend at timestep 60; retrying with batch size 4" in capsys.readouterr().err
    den.model.register_forward_pre_hook(lambda module, args: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        den.predict_noise(x, 60, cond)


def test_mnist_backend_conditions(class_checkpoint):
    den = MnistDenoiser.from_checkpoint(class_checkpoint[0])
    assert torch.equal(den.encode("an 8"), torch.eye(10)[8:9])
    assert torch.equal(den.null_condition(3), torch.zeros(3, 10))
    assert torch.equal(den.one_hot([1, 4]), torch.eye(10)[[1, 4]])


def test_mnist_backend_rejects_other_checkpoints(tmp_path):
    path = tmp_path / "time.pt"
    save_checkpoint(path, unet_payload("time", build_model("time", 8).state_dict(), num_timesteps=300, beta_start=1e-4,
                                       beta_end=0.02, p_uncond=0.0))
    with pytest.raises(DifflabError, match="class-conditioned"):
        MnistDenoiser.from_checkpoint(path)
    path = tmp_path / "noschedule.pt"
    save_checkpoint(path, unet_payload("class", build_model("class", 8).state_dict()))
    with pytest.raises(DifflabError, match="num_timesteps"):
        MnistDenoiser.from_checkpoint(path)
    with pytest.raises(DifflabError, match="part_a.backend"):
        load_backend("stable-diffusion", path)


@pytest.mark.parametrize("prompt,digit", [
    ("a 3", 3), ("an 8", 8), ("3", 3), ("digit 3", 3), ("the digit three", 3), ("A Seven.", 7), ("a photo of a 0", 0),
    ("the number nine", 9), ("  5 ", 5), ("handwritten digit one", 1),
])
def test_prompt_parsing(prompt, digit):
    assert parse_digit_prompt(prompt) == digit


def test_very_long_prompts_are_one_short_line():
    with pytest.raises(DifflabError) as info:
        parse_digit_prompt("a 3 " + "in the style of a painting " * 400)
    message = str(info.value)
    assert "is 10804 characters long; expected at most 200" in message and len(message) < 250


@pytest.mark.parametrize("prompt", ["", "   ", "a cat", "3 and 4", "12", "a high quality photo", "digit", "eleven"])
def test_prompts_without_one_digit_are_errors_naming_the_prompt(prompt):
    with pytest.raises(DifflabError) as info:
        parse_digit_prompt(prompt)
    message = str(info.value)
    assert repr(prompt) in message and "'a 3'" in message and "\n" not in message


# --- input images --------------------------------------------------------------------------------------------


def centre_of_mass(img: torch.Tensor) -> tuple[float, float]:
    a = img[0].double()
    idx = torch.arange(28, dtype=torch.float64)
    return float((a.sum(1) * idx).sum() / a.sum()), float((a.sum(0) * idx).sum() / a.sum())


def bbox_side(img: torch.Tensor) -> int:
    rows = torch.nonzero((img[0] > 0.05).any(1)).flatten()
    cols = torch.nonzero((img[0] > 0.05).any(0)).flatten()
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)


@pytest.mark.parametrize("render", [lambda d: inputs.stroke_digit(d), lambda d: inputs.font_digit(d),
                                    lambda d: inputs.stroke_digit(d, 2.6, 0.02, gen(d))])
def test_rendered_digits_look_like_mnist(render):
    digits = [render(d) for d in range(10)]
    for img in digits:
        assert img.shape == (1, 28, 28) and img.dtype == torch.float32
        assert float(img.min()) == 0.0 and float(img.max()) == pytest.approx(1.0)
        ink = float((img > 0.5).float().mean())
        assert 0.04 < ink < 0.4
        cy, cx = centre_of_mass(img)
        assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
        assert 18 <= bbox_side(img) <= 21
        assert float(img[0, 0].sum() + img[0, -1].sum() + img[0, :, 0].sum() + img[0, :, -1].sum()) == 0.0  # a dark frame
    for i in range(10):
        for j in range(i + 1, 10):
            assert (digits[i] - digits[j]).abs().mean() > 0.03


def test_stroke_wobble_is_seeded():
    a, b = inputs.stroke_digit(3, wobble=0.02, generator=gen(1)), inputs.stroke_digit(3, wobble=0.02, generator=gen(1))
    c = inputs.stroke_digit(3, wobble=0.02, generator=gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(DifflabError):
        inputs.stroke_digit(10)


def test_center_like_mnist_moves_an_off_centre_blob():
    img = np.zeros((60, 60), dtype=np.float32)
    img[2:12, 40:45] = 1.0
    out = inputs.center_like_mnist(img)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6 and bbox_side(out) == 20
    with pytest.raises(DifflabError, match="blank"):
        inputs.center_like_mnist(np.zeros((28, 28)))


def draw_seven(size=(90, 120), ink=0, paper=255, mode="L") -> Image.Image:
    im = Image.new(mode, size, paper)
    ImageDraw.Draw(im).line([(20, 20), (70, 20), (35, 100)], fill=ink, width=9)
    return im


def test_user_image_dark_on_light_is_inverted_and_centred(tmp_path):
    path = tmp_path / "7_mine.png"
    draw_seven().convert("RGB").save(path)
    img, notes = inputs.load_user_image(path)
    assert img.shape == (1, 28, 28) and float(img.max()) == pytest.approx(1.0) and float(img[0, 0, 0]) == 0.0
    assert any("inverted" in n for n in notes)
    cy, cx = centre_of_mass(img)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert inputs.digit_in_name(path) == 7 and inputs.digit_in_name(tmp_path / "12.png") is None
    assert inputs.digit_in_name(tmp_path / "drawing.png") is None


def test_user_image_formats_are_converted_with_a_note(tmp_path):
    reference, _ = inputs.load_user_image(_save(tmp_path / "ref.png", draw_seven()))
    rgba = Image.new("RGBA", (90, 120), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(20, 20), (70, 20), (35, 100)], fill=(0, 0, 0, 255), width=9)
    cases = {
        "rgba.png": (rgba, "transparency"),
        "cmyk.jpg": (draw_seven().convert("CMYK"), "CMYK"),
        "wide.png": (Image.fromarray((255 - np.asarray(draw_seven(), dtype=np.uint16)) * 257), "16-bit"),
        "palette.png": (draw_seven().convert("P"), None),
    }
    for name, (im, note) in cases.items():
        img, notes = inputs.load_user_image(_save(tmp_path / name, im))
        assert (img - reference).abs().mean() < 0.03, name
        if note:
            assert any(note in n for n in notes), (name, notes)
    frames = [draw_seven(), Image.new("L", (90, 120), 255)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    img, notes = inputs.load_user_image(path)
    assert any("first frame" in n for n in notes) and (img - reference).abs().mean() < 0.03


def test_exif_orientation_is_applied(tmp_path):
    reference, _ = inputs.load_user_image(_save(tmp_path / "ref.png", draw_seven()))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phone cameras write it
    draw_seven().transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img, _ = inputs.load_user_image(tmp_path / "phone.jpg")
    assert (img - reference).abs().mean() < 0.03


def _save(path, im):
    im.save(path)
    return path


def _png_with_size(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims width x height (CRC recomputed)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 0).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize("name,content,message", [
    ("notes.png", b"these are my notes, not a picture\n", "not an image"),
    ("empty.png", b"", "empty file"),
    ("huge.png", _png_with_size(20000, 20000), "too large"),
    ("10k.png", _png_with_size(10000, 10000), "too large"),
    ("blank.png", None, "no digit"),
    ("tiny.png", None, "too small"),
    ("cut.png", None, "truncated or corrupt"),
])
def test_bad_user_images_are_one_line_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if name == "blank.png":
        Image.new("L", (50, 50), 200).save(path)
    elif name == "tiny.png":
        Image.new("L", (1, 1), 0).save(path)
    elif name == "cut.png":
        buf = io.BytesIO()
        draw_seven().save(buf, format="PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(DifflabError) as info:
        inputs.load_user_image(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_load_user_images_skips_bad_files_and_ignores_other_files(tmp_path):
    draw_seven().save(tmp_path / "3_good.png")
    (tmp_path / "bad.png").write_bytes(b"")
    (tmp_path / "README.md").write_text("drop PNGs here")
    loaded, skipped = inputs.load_user_images(tmp_path)
    assert [p.endswith("3_good.png") for p, _, _ in loaded] == [True]
    assert len(skipped) == 1 and skipped[0][0].endswith("bad.png") and "empty file" in skipped[0][1]
    assert inputs.load_user_images(tmp_path / "missing") == ([], [])


# --- inpainting masks --------------------------------------------------------------------------------------------


def _mask_png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_mask_image_white_is_inpainted_black_is_kept(tmp_path):
    a = np.zeros((28, 28), np.uint8)
    a[5:9, 2:20] = 255
    mask = inputs.load_mask(_mask_png(tmp_path / "m.png", a), 28, 28)
    assert mask.shape == (1, 28, 28) and mask.sum() == 4 * 18 and mask[0, 5, 2] == 1 and mask[0, 0, 0] == 0


@pytest.mark.parametrize("name,array,message", [
    ("big.png", np.zeros((64, 64)), "the mask is 64 x 64 pixels; expected 28 x 28"),
    ("grey.png", np.full((28, 28), 128), "1 grey level(s) besides black and white (e.g. 128)"),
    ("none.png", np.zeros((28, 28)), "the mask selects no pixels"),
    ("all.png", np.full((28, 28), 255), "the mask selects every pixel"),
    ("empty.png", None, "empty file"),
    ("text.png", b"a mask, I promise", "not an image"),
])
def test_bad_masks_are_one_line_errors_naming_the_file(tmp_path, name, array, message):
    path = tmp_path / name
    if array is None:
        path.write_bytes(b"")
    elif isinstance(array, bytes):
        path.write_bytes(array)
    else:
        _mask_png(path, array)
    with pytest.raises(DifflabError) as info:
        inputs.load_mask(path, 28, 28)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_jpeg_masks_are_rejected_for_their_grey_edges(tmp_path):
    a = np.zeros((28, 28), np.uint8)
    a[8:20, 8:20] = 255
    Image.fromarray(a).save(tmp_path / "m.jpg", quality=75)
    with pytest.raises(DifflabError, match="saved as PNG"):
        inputs.load_mask(tmp_path / "m.jpg", 28, 28)
