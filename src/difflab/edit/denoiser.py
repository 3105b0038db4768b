"""The `Denoiser` interface: everything the Part A algorithms need from a diffusion model, and nothing else.

A backend (the Part B class-conditioned UNet on MNIST, DeepFloyd IF, ...) provides:

- `alphas_cumprod`: the schedule abar_t for t = 0..T-1, a (T,) tensor;
- `predict_noise(x_t, t, cond)`: the noise estimate eps(x_t, t, cond) for a batch at one timestep t, and the
  model's learned-variance output when it has one (None otherwise);
- `encode(prompt)`: a condition tensor with a batch dimension of 1 for a text prompt;
- `null_condition(batch)`: the "no prompt" condition used as the unconditional half of classifier-free
  guidance, with a batch dimension of `batch`;
- `image_shape` (C, H, W), `value_range` (lo, hi) of clean images and the `device` it runs on.

Conditions are tensors whose first dimension is the batch, so the algorithms can stack a conditional and an
unconditional batch and run them through the model in one forward pass.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Denoiser(Protocol):
    alphas_cumprod: Tensor  # (T,) abar_t, on `device`
    image_shape: tuple[int, int, int]  # (C, H, W)
    value_range: tuple[float, float]  # clean images live in [lo, hi]: (0, 1) for MNIST, (-1, 1) for DeepFloyd
    device: torch.device

    def predict_noise(self, x_t: Tensor, t: int, cond: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return (eps_hat, v) for a batch x_t (N, C, H, W) at timestep t with conditions cond (N, ...).

        v is the model's learned variance in the "learned_range" form of Improved DDPM (Nichol & Dhariwal
        2021, used by DeepFloyd IF stage I): a value in [-1, 1] per pixel that interpolates the log-variance
        between the posterior variance beta_tilde (v = -1) and beta (v = 1). A model without learned variance
        returns None, and the reverse step uses the DDPM posterior variance beta_tilde.
        """
        ...

    def encode(self, prompt: str) -> Tensor:
        """The condition for a text prompt, with batch dimension 1; raises DifflabError if it cannot."""
        ...

    def null_condition(self, batch: int) -> Tensor:
        """The unconditional ("empty prompt") condition, with batch dimension `batch`."""
        ...
