"""Speed switches of training and sampling (config section `performance`): numeric precision and torch.compile.

Both default to the plain path (fp32, eager), which is the one every number in the writeup's settings was checked
with; `make bench` (difflab.bench) measures what each switch buys on the machine at hand and checks that both paths
compute the same thing (losses after the same steps, samples from the same noise).

- precision "bf16": the model's forward (and, in training, its backward) runs under `torch.autocast` with bfloat16
  (PyTorch AMP: matmuls and convolutions in bf16, reductions and the loss in fp32); weights, optimiser state, the
  schedule and every sampler update stay fp32, so only the network's output carries bf16 rounding.
- compile: the model is wrapped by `torch.compile`; on CUDA in mode "reduce-overhead" (CUDA graphs, which remove
  the per-kernel launch cost that bounds these small UNets at batch 128), on CPU in the default mode (Inductor's C++
  kernels). The first calls compile (seconds to a minute), so it pays only in long jobs.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """The context the model's forward runs in: torch.autocast(device.type, bfloat16) for "bf16", a no-op for "fp32".

    Raises ValueError for another precision name (config validation names the key first)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def compile_model(model: nn.Module, enabled: bool, device: torch.device) -> nn.Module:
    """`model` itself when not enabled, else torch.compile(model) ("reduce-overhead" on CUDA, default on CPU).

    The compiled wrapper shares parameters with `model`: save `model.state_dict()`, not the wrapper's."""
    if not enabled:
        return model
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)


class Autocast(nn.Module):
    """`model`'s forward under autocast(precision); the output is returned as float32, so losses and sampler updates
    stay fp32. Holds `model` (its parameters are the model's own) and passes `num_classes` through."""

    def __init__(self, model: nn.Module, precision: str, device: torch.device):
        super().__init__()
        autocast(device, precision)  # validates the name
        self.model, self.precision, self.device = model, precision, device
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, *args, **kwargs):
        with autocast(self.device, self.precision):
            return self.model(*args, **kwargs).float()


def accelerate(model: nn.Module, precision: str, compile: bool, device: torch.device) -> nn.Module:
    """The module to call for forwards (and backwards): `model` itself for fp32 eager, else `model` under
    Autocast and/or torch.compile. Parameters are shared: train and save `model`, call the returned module."""
    if precision != "fp32":
        model = Autocast(model, precision, device)
    return compile_model(model, compile, device)


def make_adam(parameters, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam as the spec trains with it; on CUDA the fused kernel (one launch for all parameters, the same update
    rule: PyTorch's `fused=True`), elsewhere the default implementation (bit-identical CPU runs stay so)."""
    return torch.optim.Adam(parameters, lr=lr, fused=True if device.type == "cuda" else None)
