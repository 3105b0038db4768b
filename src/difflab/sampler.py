"""The one reverse loop of every sampler in difflab (Part B's DDPM sampling, every Part A algorithm), with the
variance of each step chosen by one switch (the diffusers `variance_type` idea).

One step from t to the earlier t' (t' = t - 1 for DDPM, t' = t - stride for strided sampling, t' = -1 for the
clean image, whose abar is 1):

    1. (eps, v) = noise_fn(x_t, t)                          the model's noise estimate (and learned variance)
    2. z ~ N(0, I) from the generator                        drawn on EVERY step, the last one included
    3. sigma^2 = step_variance(variance, v, abar_t, abar_t') 0 on the step into t' = -1
    4. x_t' = posterior_mean(x_t, x0_hat(eps)) + sigma z     difflab.schedule.reverse_step (spec eq A.3 / B.6)

or, with the DDIM sampler (`ddim_eta` given), steps 3-4 become the generalised step of Song et al. 2021 (eq 12):

    3'. sigma^2 = ddim_eta^2 beta_tilde                       (eq 16; `variance` is not used)
    4'. x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma z   difflab.schedule.ddim_step

eta = 0 is deterministic (z is drawn but multiplied by 0); eta = 1 is step 4 with the posterior variance.

Random draws, in order: one z of x's shape per step. Drawing z on the last step too (where sigma = 0) keeps the
draw order of Part A's loop; for Part B's loop it changes nothing, since nothing is drawn after it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from tqdm import tqdm

from difflab.schedule import NoiseSchedule, ddim_step, posterior_variance, reverse_step, step_beta

VARIANCES = ("beta", "posterior", "learned_range", "auto")
SAMPLERS = ("ddpm", "ddim")  # config keys part_a.sampler, part_b.ddpm.sampler

# noise_fn(x_t, t) -> (eps_hat, learned variance value v in [-1, 1] or None)
NoiseFn = Callable[[Tensor, int], tuple[Tensor, Tensor | None]]
# callback(i, t, x): called after each reverse step with the new state x at t = timesteps[i].
Callback = Callable[[int, int, Tensor], None]


def step_variance(variance: str, v: Tensor | None, abar_t: Tensor, abar_prev: Tensor) -> Tensor:
    """sigma^2 of the reverse step t -> t', by `variance`:

    "beta"          beta_t = 1 - abar_t / abar_{t'}: DDPM's sigma_t^2 = beta_t (Ho et al. 2020; spec Algorithm B.2;
                    diffusers "fixed_large").
    "posterior"     beta_tilde = (1 - abar_{t'}) / (1 - abar_t) * beta_t, the posterior variance of q(x_{t'} | x_t, x_0)
                    (spec A.1.4; diffusers "fixed_small").
    "learned_range" the model's v in [-1, 1] interpolates the two in log space (Improved DDPM eq 15, DeepFloyd IF):
                    frac = (v + 1) / 2, log sigma^2 = frac log beta_t + (1 - frac) log beta_tilde; beta_tilde is clamped
                    at 1e-20 before the log, as diffusers does.
    "auto"          "learned_range" where the model returns v, else "posterior" (Part A's Denoiser backends).

    Raises ValueError for an unknown choice, or "learned_range" without v.
    """
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of {', '.join(VARIANCES)}")
    if variance == "auto":
        variance = "posterior" if v is None else "learned_range"
    if variance == "beta":
        return step_beta(abar_t, abar_prev)
    beta_tilde = posterior_variance(abar_t, abar_prev)
    if variance == "posterior":
        return beta_tilde
    if v is None:
        raise ValueError("variance 'learned_range' needs a model that returns its variance value v")
    frac = (v + 1.0) / 2.0
    return (frac * step_beta(abar_t, abar_prev).log() + (1.0 - frac) * beta_tilde.clamp(min=1e-20).log()).exp()


def ddim_eta_of(sampler: str, ddim_eta: float) -> float | None:
    """The reverse loop's `ddim_eta` for a config's sampler choice (keys `sampler` and `ddim_eta` of part_a or
    part_b.ddpm): None for "ddpm" (posterior-mean steps with the caller's variance), ddim_eta for "ddim".
    Raises ValueError for a sampler outside SAMPLERS or a negative eta."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if ddim_eta < 0:
        raise ValueError(f"ddim_eta must be >= 0, got {ddim_eta}")
    return float(ddim_eta) if sampler == "ddim" else None


def check_i_start(i_start: int, timesteps: list[int]) -> None:
    """i_start must index a timestep the chain starts from (0 .. len - 2: the last entry, -1 for the clean image, is
    where it ends).

    The one bound of i_start, used by the reverse loop and by config validation (difflab.config).
    Raises ValueError naming the allowed indices and their timesteps."""
    if not 0 <= i_start < len(timesteps) - 1:
        raise ValueError(f"expected an index into the {len(timesteps) - 1} strided timesteps {timesteps[0]}..{timesteps[-2]}, "
                         f"i.e. 0..{len(timesteps) - 2}")


def reverse(
    x: Tensor,
    timesteps: list[int],
    schedule: NoiseSchedule,
    noise_fn: NoiseFn,
    generator: torch.Generator,
    variance: str = "auto",
    i_start: int = 0,
    after_step: Callable[[Tensor, int], Tensor] | None = None,
    callback: Callback | None = None,
    desc: str | None = None,
    ddim_eta: float | None = None,
) -> Tensor:
    """Run the reverse process on x (N, C, H, W) at t = timesteps[i_start] down to timesteps[-1] (-1: the clean
    image), by the steps of the module docstring; then x_{t'} = after_step(x_{t'}, t') if given (inpainting), and
    callback(i + 1, t', x_{t'}). `timesteps` must be strictly descending (DDPM: T-1, ..., 0, -1;
    strided: e.g. 290, 280, ..., 0, -1). `desc` turns on a progress bar with that label. ddim_eta None: DDPM steps
    with `variance`; a number: DDIM steps with that eta (module docstring), the same draws in the same order.

    Returns x at t = -1, not clipped. Raises ValueError for a bad i_start, timesteps or variance."""
    check_i_start(i_start, timesteps)
    if any(a <= b for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError("timesteps must be strictly descending")
    schedule = schedule.to(x.device)
    for i in tqdm(range(i_start, len(timesteps) - 1), desc=desc, disable=desc is None, leave=False, mininterval=1.0):
        t, t_prev = timesteps[i], timesteps[i + 1]
        abar_t, abar_prev = schedule.abar(t, x.dim()), schedule.abar(t_prev, x.dim())
        eps, v = noise_fn(x, t)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if ddim_eta is not None:
            x = ddim_step(x, eps, abar_t, abar_prev, ddim_eta, z)
        else:
            std = torch.zeros_like(abar_t) if t_prev < 0 else step_variance(variance, v, abar_t, abar_prev).sqrt()
            x = reverse_step(x, eps, abar_t, abar_prev, std, z)
        if after_step is not None:
            x = after_step(x, t_prev)
        if callback is not None:
            callback(i + 1, t_prev, x)
    return x
