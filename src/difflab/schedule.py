"""Noise schedules and the DDPM equations, each written once.

Conventions (used everywhere in difflab):
- timesteps are 0-based indices t in {0, ..., T-1};
- beta_t is the noise added at step t, alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s;
- the "previous" timestep t' of a (possibly strided) reverse step has abar_{t'} > abar_t, and the step
  below t = 0 has abar = 1 (the clean image);
- `abar_t` arguments are tensors that broadcast against the images, e.g. shape (N, 1, 1, 1).

Equation numbers refer to the CS180 project 5 spec (A.x for Part A, B.x for Part B) and to the DDPM paper
(Ho et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import Tensor


def linear_betas(beta_start: float, beta_end: float, num_timesteps: int) -> Tensor:
    """beta_t evenly spaced from beta_start to beta_end (spec B.2: torch.linspace(1e-4, 0.02, 300))."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64).float()


def alphas_cumprod_from_betas(betas: Tensor) -> Tensor:
    """abar_t = prod_{s=0}^{t} (1 - beta_s), computed in float64 so that T = 1000 loses no precision."""
    return torch.cumprod(1.0 - betas.double(), dim=0).float()


@dataclass(frozen=True)
class NoiseSchedule:
    """The cumulative schedule abar_t for t = 0..T-1; everything else derives from it."""

    alphas_cumprod: Tensor

    @classmethod
    def linear(cls, beta_start: float, beta_end: float, num_timesteps: int) -> "NoiseSchedule":
        return cls(alphas_cumprod_from_betas(linear_betas(beta_start, beta_end, num_timesteps)))

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        return NoiseSchedule(self.alphas_cumprod.to(device))

    def abar(self, t: Tensor | int, ndim: int = 4) -> Tensor:
        """abar_t for a batch of timesteps, shaped (N, 1, ..., 1) to broadcast over images of `ndim` dims.

        A timestep of -1 means "below t = 0" and gives abar = 1.
        """
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long().reshape(-1)
        padded = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])
        return padded[t + 1].reshape(-1, *([1] * (ndim - 1)))


def forward_noise(x0: Tensor, abar_t: Tensor, eps: Tensor) -> Tensor:
    """Forward process q(x_t | x_0) (eq A.2, B.4): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    return abar_t.sqrt() * x0 + (1.0 - abar_t).sqrt() * eps


def add_gaussian_noise(x: Tensor, sigma: float, eps: Tensor) -> Tensor:
    """Part B.1 noising (eq B.2): z = x + sigma * eps."""
    return x + sigma * eps


def predict_x0(x_t: Tensor, eps_hat: Tensor, abar_t: Tensor) -> Tensor:
    """One-step clean estimate (eq A.2 inverted): x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)."""
    return (x_t - (1.0 - abar_t).sqrt() * eps_hat) / abar_t.sqrt()


def step_beta(abar_t: Tensor, abar_prev: Tensor) -> Tensor:
    """The effective beta of a (strided) step t -> t': alpha_t = abar_t / abar_{t'}, beta_t = 1 - alpha_t."""
    return 1.0 - abar_t / abar_prev


def posterior_mean(x_t: Tensor, x0_hat: Tensor, abar_t: Tensor, abar_prev: Tensor) -> Tensor:
    """Mean of q(x_{t'} | x_t, x0_hat) (eq A.3, DDPM eq 7):

        x_{t'} = sqrt(abar_{t'}) beta_t / (1 - abar_t) * x0_hat + sqrt(alpha_t) (1 - abar_{t'}) / (1 - abar_t) * x_t

    with alpha_t = abar_t / abar_{t'} and beta_t = 1 - alpha_t.
    """
    alpha_t = abar_t / abar_prev
    beta_t = 1.0 - alpha_t
    return (abar_prev.sqrt() * beta_t / (1.0 - abar_t)) * x0_hat + (
        alpha_t.sqrt() * (1.0 - abar_prev) / (1.0 - abar_t)
    ) * x_t


def posterior_variance(abar_t: Tensor, abar_prev: Tensor) -> Tensor:
    """Variance of q(x_{t'} | x_t, x_0) (DDPM eq 7): beta_tilde_t = (1 - abar_{t'}) / (1 - abar_t) * beta_t."""
    return (1.0 - abar_prev) / (1.0 - abar_t) * step_beta(abar_t, abar_prev)


def reverse_step(x_t: Tensor, eps_hat: Tensor, abar_t: Tensor, abar_prev: Tensor, noise_std: Tensor, z: Tensor) -> Tensor:
    """One reverse step (Algorithm B.2 line 6, eq A.3): posterior_mean(x_t, x0_hat) + noise_std * z,
    where x0_hat = predict_x0(x_t, eps_hat, abar_t). Pass z = 0 on the last step."""
    x0_hat = predict_x0(x_t, eps_hat, abar_t)
    return posterior_mean(x_t, x0_hat, abar_t, abar_prev) + noise_std * z


def ddim_step(x_t: Tensor, eps_hat: Tensor, abar_t: Tensor, abar_prev: Tensor, eta: float, z: Tensor) -> Tensor:
    """One generalised (DDIM) reverse step t -> t' (Song et al. 2021, "Denoising Diffusion Implicit Models", eq 12):

        x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - sigma^2) eps_hat + sigma z,
        sigma^2 = eta^2 beta_tilde  (eq 16; beta_tilde = `posterior_variance(abar_t, abar_{t'})`),

    with x0_hat = `predict_x0(x_t, eps_hat, abar_t)`. eta = 0 is the deterministic DDIM step; eta = 1 is the DDPM
    posterior step `reverse_step(..., noise_std = sqrt(beta_tilde), z)` on the same (strided) pair (t, t').
    On the step into the clean image (abar_{t'} = 1) beta_tilde = 0 and the result is x0_hat.

    x_t, eps_hat, z: (N, C, H, W), same dtype; abar_t, abar_prev: broadcastable (e.g. (N, 1, 1, 1)), 0 < abar_t <
    abar_prev <= 1; eta >= 0 (dimensionless; eta > 1 makes 1 - abar_{t'} - sigma^2 negative for some steps, and
    its square root is then taken as 0). Returns x_{t'} of x_t's shape. Same as diffusers `DDIMScheduler.step` with
    `variance_noise=z`, `clip_sample=False`, prediction_type "epsilon" (tested).
    """
    x0_hat = predict_x0(x_t, eps_hat, abar_t)
    sigma2 = eta**2 * posterior_variance(abar_t, abar_prev)
    direction = (1.0 - abar_prev - sigma2).clamp(min=0.0).sqrt() * eps_hat
    return abar_prev.sqrt() * x0_hat + direction + sigma2.sqrt() * z


def classifier_free_guidance(eps_uncond: Tensor, eps_cond: Tensor, scale: float) -> Tensor:
    """CFG (eq A.4, Algorithm B.4): eps = eps_u + gamma (eps_c - eps_u). gamma = 0: unconditional, 1: conditional."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def equivalent_sigma(abar_t: Tensor) -> Tensor:
    """The noise level of x_t on the clean image's scale (DDPM eq 4 divided by sqrt(abar_t)):

        x_t / sqrt(abar_t) = x0 + sigma_t eps  with  sigma_t = sqrt((1 - abar_t) / abar_t).

    abar_t: any shape, values in (0, 1]; returns sigma_t >= 0 of the same shape and dtype (pixel units of x0).
    """
    return ((1.0 - abar_t) / abar_t).sqrt()


def sigma_max(schedule: NoiseSchedule) -> float:
    """The largest noise level z = x0 + sigma eps the schedule represents: sigma_{T-1} = sqrt((1 - abar_{T-1}) / abar_{T-1})
    (`equivalent_sigma` at the last timestep, in float64 as `sigma_to_timestep` compares). T = 300 with beta
    1e-4 -> 0.02 (spec B.2) gives 4.4506. A larger sigma has no timestep of its own: `sigma_to_timestep` maps it
    to T - 1, i.e. the model would be told less noise than there is. Returns inf if abar_{T-1} underflowed to 0."""
    return float(equivalent_sigma(schedule.alphas_cumprod[-1:].double())[0])


def sigma_to_timestep(sigma: float, schedule: NoiseSchedule) -> int:
    """The timestep whose noise level matches z = x0 + sigma eps.

    `equivalent_sigma` gives sigma_t for every t; we pick the t that minimises |sigma^2 - sigma_t^2| (nearest t).
    sigma = 0 maps to t = 0; a sigma above `sigma_max(schedule)` maps to T - 1 (callers that must not clamp
    check `sigma_max` first, as config validation does for part_b.denoiser.noise_levels).
    """
    variance = equivalent_sigma(schedule.alphas_cumprod.double()) ** 2
    return int(torch.argmin((variance - sigma**2).abs()).item())


def strided_timesteps(num_timesteps: int, stride: int) -> list[int]:
    """Descending timesteps for strided sampling, ending at 0 (spec A.1.4: T = 1000, stride 30 -> 990, 960, ..., 0).

    This is "leading" spacing: the multiples of the stride counted up from 0, so the first one can lie up to
    stride - 1 below the last trained timestep T - 1 (T = 300, stride 30 -> 270); see `trailing_timesteps`.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    start = ((num_timesteps - 1) // stride) * stride
    return list(range(start, -1, -stride))


def trailing_timesteps(num_timesteps: int, num_steps: int) -> list[int]:
    """Descending timesteps with "trailing" spacing, starting at the last trained timestep T - 1:

        t_i = round(T - i T / N) - 1,  i = 0, ..., N - 1

    (diffusers `timestep_spacing="trailing"`; Lin et al. 2023, "Common diffusion noise schedules and sample steps
    are flawed", Table 2). Rounding is half-to-even on the exact value T (N - i) / N, as numpy's round.
    T = 300, N = 10 -> 299, 269, ..., 29; T = 1000, N = 10 -> 999, 899, ..., 99. The list ends at round(T / N) - 1,
    not 0: the step after it lands on the clean image (t = -1 in difflab's lists). Strictly decreasing for N <= T.
    Raises ValueError unless 1 <= N <= T.
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"number of steps must be in 1..{num_timesteps} (the number of timesteps), got {num_steps}")
    return [round(Fraction(num_timesteps * (num_steps - i), num_steps)) - 1 for i in range(num_steps)]
