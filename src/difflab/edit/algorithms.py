"""Part A's algorithms, written once against the `Denoiser` protocol (edit/denoiser.py).

Nothing here knows which model runs underneath: the MNIST class UNet and DeepFloyd IF plug in the same way.
The DDPM equations come from `difflab.schedule`; this module only chains them.

Timesteps are descending lists such as [990, 960, ..., 30, 0, -1] (DeepFloyd) or [290, 280, ..., 0, -1]
(MNIST, stride 10), or with trailing spacing [299, 289, ..., 9, -1] for chains that start from pure noise. Index i of the list is what the spec calls i_start; one reverse step goes from
t = timesteps[i] to t' = timesteps[i + 1]. The trailing -1 stands for the clean image (abar = 1): the last
step lands on the one-step estimate x0_hat at t = 0 without noise, as DDPM's final step does.

Randomness: every stochastic function takes an explicit torch.Generator and draws from it in a fixed order
(documented per function), so equal seeds give equal images.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torchvision.transforms import functional as TF

from difflab.edit.denoiser import Denoiser
from difflab.sampler import Callback, NoiseFn, check_i_start, reverse  # noqa: F401  (check_i_start: the one bound)
from difflab.schedule import (
    NoiseSchedule,
    classifier_free_guidance,
    forward_noise,
    predict_x0,
    strided_timesteps,
    trailing_timesteps,
)


# --- timesteps and noise ------------------------------------------------------------------------------------


def schedule_of(denoiser: Denoiser) -> NoiseSchedule:
    return NoiseSchedule(denoiser.alphas_cumprod)


SPACINGS = ("leading", "trailing")


def denoising_timesteps(num_timesteps: int, stride: int, start: int | None = None, spacing: str = "leading") -> list[int]:
    """Descending timesteps for strided denoising, followed by -1 (the clean image).

    start=None, spacing="leading": `strided_timesteps(T, stride)` (spec A.1.4: T = 1000, stride 30 -> 990, 960, ..., 0;
    T = 300, stride 30 -> 270, ..., 0).
    start=None, spacing="trailing": as many timesteps N as the leading list has (so the same number of model calls),
    placed by `trailing_timesteps(T, N)`: t_i = round(T - i T / N) - 1, starting at T - 1 (T = 300, stride 30 ->
    299, 269, ..., 29). Use it for chains that start from pure noise, which the model saw only at t = T - 1.
    start=t: t, t - stride, ... down to the last value >= 0 (the benchmark starts exactly at each noise level).
    Raises ValueError for a stride < 1, a start outside 0..T-1, an unknown spacing, or start with "trailing".
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; expected one of {SPACINGS}")
    if start is None:
        steps = strided_timesteps(num_timesteps, stride)
        if spacing == "trailing":
            steps = trailing_timesteps(num_timesteps, len(steps))
    else:
        if spacing != "leading":
            raise ValueError("a start timestep fixes the first step; trailing spacing applies only from t = T - 1")
        if not 0 <= start < num_timesteps:
            raise ValueError(f"start timestep {start} is outside 0..{num_timesteps - 1}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        steps = list(range(start, -1, -stride))
    return steps + [-1]


def stride_for_steps(num_timesteps: int, num_steps: int) -> int:
    """The stride that gives at most `num_steps` model calls: ceil(T / num_steps) (T = 300, 10 steps -> 30)."""
    if num_steps < 1:
        raise ValueError(f"number of steps must be >= 1, got {num_steps}")
    return max(1, math.ceil(num_timesteps / num_steps))


def pure_noise(denoiser: Denoiser, batch: int, generator: torch.Generator) -> Tensor:
    """x_T ~ N(0, I) with the backend's image shape."""
    return torch.randn((batch, *denoiser.image_shape), generator=generator, device=denoiser.device)


def forward(denoiser: Denoiser, x0: Tensor, t: int, generator: torch.Generator) -> Tensor:
    """Forward process (eq A.2): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, eps drawn from `generator`.

    t = -1 returns x0 unchanged (abar = 1); eps is drawn all the same.
    """
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return forward_noise(x0, schedule_of(denoiser).abar(t, x0.dim()), eps)


# --- model calls --------------------------------------------------------------------------------------------


def _expand(cond: Tensor, batch: int) -> Tensor:
    """A condition with batch dimension 1 or `batch`, as a `batch`-row tensor."""
    if cond.shape[0] == batch:
        return cond
    if cond.shape[0] == 1:
        return cond.expand(batch, *cond.shape[1:])
    raise ValueError(f"condition batch {cond.shape[0]} does not match image batch {batch}")


def guided_noise_batch(
    denoiser: Denoiser, xs: list[Tensor], t: int, conds: list[Tensor], scale: float | None
) -> list[tuple[Tensor, Tensor | None]]:
    """Noise estimates for several (x, cond) pairs at one t, all in one forward pass.

    scale None: eps_k = eps(x_k, t, cond_k). Otherwise classifier-free guidance on each pair (eq A.4):
    eps_k = eps_u + scale (eps_c - eps_u) with eps_u = eps(x_k, t, null); the conditional and the unconditional
    halves go through the model as one batch, and the learned variance (if any) is the conditional one.
    """
    sizes = [x.shape[0] for x in xs]
    conds = [_expand(c, n) for c, n in zip(conds, sizes)]
    if scale is None:
        eps, var = denoiser.predict_noise(torch.cat(xs), t, torch.cat(conds))
        eps_parts = eps.split(sizes)
        var_parts = var.split(sizes) if var is not None else [None] * len(xs)
        return list(zip(eps_parts, var_parts))
    nulls = [denoiser.null_condition(n) for n in sizes]
    eps, var = denoiser.predict_noise(torch.cat(xs + xs), t, torch.cat(conds + nulls))
    eps_parts = eps.split(sizes + sizes)
    var_parts = var.split(sizes + sizes) if var is not None else [None] * (2 * len(xs))
    k = len(xs)
    return [(classifier_free_guidance(eps_parts[k + j], eps_parts[j], scale), var_parts[j]) for j in range(k)]


def cfg_noise(denoiser: Denoiser, x_t: Tensor, t: int, cond: Tensor, scale: float | None = None) -> tuple[Tensor, Tensor | None]:
    """eps(x_t, t, cond), with classifier-free guidance at `scale` (eq A.4) unless scale is None.

    scale = 1 gives the conditional estimate and scale = 0 the unconditional (null-condition) one.
    """
    return guided_noise_batch(denoiser, [x_t], t, [cond], scale)[0]


def one_step_denoise(denoiser: Denoiser, x_t: Tensor, t: int, cond: Tensor, cfg_scale: float | None = None) -> Tensor:
    """One-step clean estimate (A.1.3, eq A.2 inverted): x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)."""
    eps, _ = cfg_noise(denoiser, x_t, t, cond, cfg_scale)
    return predict_x0(x_t, eps, schedule_of(denoiser).abar(t, x_t.dim()))


# --- the reverse loop ---------------------------------------------------------------------------------------


def denoise(
    denoiser: Denoiser,
    x: Tensor,
    timesteps: list[int],
    i_start: int,
    noise_fn: NoiseFn,
    generator: torch.Generator,
    after_step: Callable[[Tensor, int], Tensor] | None = None,
    callback: Callback | None = None,
    desc: str | None = None,
    variance: str = "auto",
    ddim_eta: float | None = None,
) -> Tensor:
    """Run reverse steps from t = timesteps[i_start] down to timesteps[-1] (A.1.4, eq A.3): difflab.sampler.reverse
    on the denoiser's schedule. variance "auto": the posterior variance beta_tilde (spec A.1.4), or the model's
    learned range where it returns one (DeepFloyd IF); see difflab.sampler.step_variance for the choices.
    ddim_eta: None for these DDPM steps, a number for DDIM steps with that eta (config part_a.sampler/ddim_eta)."""
    return reverse(x, timesteps, schedule_of(denoiser), noise_fn, generator, variance, i_start, after_step, callback, desc,
                   ddim_eta)


def iterative_denoise(
    denoiser: Denoiser,
    x: Tensor,
    i_start: int,
    timesteps: list[int],
    cond: Tensor,
    generator: torch.Generator,
    cfg_scale: float | None = None,
    callback: Callback | None = None,
    desc: str | None = None,
    ddim_eta: float | None = None,
) -> Tensor:
    """Iterative denoising (A.1.4; with CFG, A.1.6) of x at t = timesteps[i_start] down to the clean image
    (ddim_eta: see `denoise`).

    Random draws: one z per step.
    """
    return denoise(denoiser, x, timesteps, i_start, lambda x_t, t: cfg_noise(denoiser, x_t, t, cond, cfg_scale),
                   generator, callback=callback, desc=desc, ddim_eta=ddim_eta)


def sdedit(denoiser: Denoiser, x0: Tensor, i_start: int, timesteps: list[int], cond: Tensor, generator: torch.Generator,
           **options) -> Tensor:
    """SDEdit image-to-image (A.1.7): noise x0 to t = timesteps[i_start] with `forward`, then `iterative_denoise`
    (its keyword options: cfg_scale, callback, desc, ddim_eta).

    A larger i_start adds less noise, so the result stays closer to x0 (check_i_start gives the allowed indices).
    Random draws: the forward noise, then one z per step.
    """
    x_t = forward(denoiser, x0, timesteps[i_start], generator)
    return iterative_denoise(denoiser, x_t, i_start, timesteps, cond, generator, **options)


def inpaint(
    denoiser: Denoiser,
    x_orig: Tensor,
    mask: Tensor,
    timesteps: list[int],
    cond: Tensor,
    generator: torch.Generator,
    cfg_scale: float | None = None,
    i_start: int = 0,
    callback: Callback | None = None,
    desc: str | None = None,
    ddim_eta: float | None = None,
) -> Tensor:
    """RePaint-style inpainting (A.1.7.2, eq A.5). mask m = 1 where new content appears, 0 where x_orig is kept.

    Start: x = m * eps + (1 - m) * forward(x_orig, t_start) with one eps ~ N(0, I), i.e. pure noise in the hole
    and the noised original elsewhere. After every reverse step t -> t':
        x_{t'} <- m * x_{t'} + (1 - m) * forward(x_orig, t'),
    so the kept region is the noised original at every step and x_orig itself after the final step (t' = -1).
    Random draws: eps, then per step z and the forward noise.
    """
    schedule = schedule_of(denoiser)
    eps = torch.randn(x_orig.shape, generator=generator, device=x_orig.device, dtype=x_orig.dtype)
    x = mask * eps + (1 - mask) * forward_noise(x_orig, schedule.abar(timesteps[i_start], x_orig.dim()), eps)

    def keep_known(x_prev: Tensor, t_prev: int) -> Tensor:
        return mask * x_prev + (1 - mask) * forward(denoiser, x_orig, t_prev, generator)

    noise_fn = lambda x_t, t: cfg_noise(denoiser, x_t, t, cond, cfg_scale)  # noqa: E731
    return denoise(denoiser, x, timesteps, i_start, noise_fn, generator, after_step=keep_known, callback=callback, desc=desc,
                   ddim_eta=ddim_eta)


# --- Gaussian filters (blur denoising; the hybrids' views in difflab.edit.views) ----------------------------


def gaussian_kernel_size(sigma: float) -> int:
    """An odd kernel that covers +-3 sigma: 2 * ceil(3 sigma) + 1."""
    return 2 * math.ceil(3 * sigma) + 1


def scale_blur_to_size(kernel_size: int, sigma: float, image_size: int, reference_size: int) -> tuple[int, float]:
    """A Gaussian filter given for `reference_size` pixels, rescaled to `image_size` pixels.

    sigma' = sigma * image_size / reference_size and kernel' = the odd integer nearest kernel_size * image_size /
    reference_size, at least 3 (DeepFloyd's 33 px, sigma 2 at 64 px -> 15 px, sigma 0.875 at 28 px).
    """
    ratio = image_size / reference_size
    k = max(3, int(round(kernel_size * ratio)))
    if k % 2 == 0:
        k += 1 if kernel_size * ratio >= k else -1
    return max(3, k), sigma * ratio


def lowpass(x: Tensor, kernel_size: int, sigma: float) -> Tensor:
    """Gaussian low-pass: torchvision gaussian_blur with a kernel_size x kernel_size kernel of std sigma.

    Raises ValueError, before building the kernel, when its reflect padding (kernel_size // 2) is not smaller than
    the image's height and width; config validation relies on this (difflab.config_limits.limit_errors)."""
    if kernel_size // 2 >= min(x.shape[-2:]):
        raise ValueError(f"a {kernel_size} px Gaussian kernel does not fit a {x.shape[-2]} x {x.shape[-1]} image")
    return TF.gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])


def highpass(x: Tensor, kernel_size: int, sigma: float) -> Tensor:
    """Gaussian high-pass: x - lowpass(x), so lowpass(x) + highpass(x) = x."""
    return x - lowpass(x, kernel_size, sigma)


def blur_denoise(x_t: Tensor, abar_t: Tensor, sigma: float) -> Tensor:
    """Classical denoising (A.1.2): Gaussian blur of x_t / sqrt(abar_t) = predict_x0(x_t, eps = 0, abar_t),
    the noisy image brought back to the clean image's scale, with a gaussian_kernel_size(sigma) kernel."""
    return lowpass(predict_x0(x_t, torch.zeros_like(x_t), abar_t), gaussian_kernel_size(sigma), sigma)
