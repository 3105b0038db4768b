"""Speed switches of training and sampling (config section `performance`): numeric precision, CUDA graphs and
torch.compile, and the sampling batch on each kind of device.

The defaults are the paths measured fastest on each device (README "Performance"); `make bench` (difflab.bench)
measures what each switch buys on the machine at hand and checks that both paths compute the same thing (losses after
the same steps, samples from the same noise).

- train_precision / sample_precision "bf16": the model's forward (and, in training, its backward) runs under
  `torch.autocast` with bfloat16 (PyTorch AMP: matmuls and convolutions in bf16, reductions and the loss in fp32);
  weights, optimiser state, the schedule and every sampler update stay fp32, so only the network's output carries
  bf16 rounding. "auto" picks bf16 where the hardware computes it natively and it was measured to pay:
  sampling on CUDA and on CPUs with bf16 instructions (AVX512-BF16 or AMX), training on such CPUs only (on CUDA,
  batch 128 is launch-bound: issue 13's H100 anchor ran slower in bf16). Elsewhere bf16 is emulated, so "auto" is fp32.
- cuda_graphs: on CUDA each full training batch is one CUDA-graph replay (difflab.train_step); ignored on a CPU and
  when compile is on (whose "reduce-overhead" mode uses CUDA graphs itself).
- compile: the model is wrapped by `torch.compile`; on CUDA in mode "reduce-overhead" (CUDA graphs), on CPU in the
  default mode (Inductor's C++ kernels). The first calls compile (seconds to a minute) in every job, so it pays only
  in long jobs.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")
# part_b.ddpm.sample_batch_size "auto" on a CPU: images per forward (CFG doubles it). Small batches keep the UNet's
# activations in the CPU's caches: 64 sampled 2.2x faster than 1,000 on 2 cores (README "Performance"), and the
# samples do not depend on the batch (difflab.sampling draws each step's noise for all images at once).
AUTO_CPU_SAMPLE_BATCH = 64


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware: a CUDA GPU with bf16 tensor cores (Ampere on; not the T4 class,
    where PyTorch would emulate it), or a CPU with AVX512-BF16 or AMX tiles (oneDNN's bf16 kernels; torch.cpu's
    capability checks). Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def sample_precision(name: str, device: torch.device) -> str:
    """Config key `performance.sample_precision` resolved for `device`: "auto" -> "bf16" where `native_bf16`, else
    "fp32"; "fp32" and "bf16" as given."""
    return ("bf16" if native_bf16(device) else "fp32") if name == "auto" else name


def train_precision(name: str, device: torch.device) -> str:
    """Config key `performance.train_precision` resolved for `device`: "auto" -> "bf16" on a CPU with native bf16
    (1.65x at the laptop's width, README "Performance"), "fp32" on CUDA (batch 128 is launch-bound there; the H100
    anchor of issue 13: bf16 0.83x) and on other CPUs; "fp32" and "bf16" as given."""
    return ("bf16" if device.type == "cpu" and native_bf16(device) else "fp32") if name == "auto" else name


def sample_batch(value: int | str, n: int, device: torch.device) -> int:
    """Config key `part_b.ddpm.sample_batch_size` resolved for n images on `device`: a number as given; "auto" -> all
    n at once on CUDA (an out-of-memory error halves the chunk and retries: difflab.runtime.map_in_chunks, so the
    batch adapts to the GPU's free memory), min(n, AUTO_CPU_SAMPLE_BATCH) on a CPU (cache-sized)."""
    if value != "auto":
        return int(value)
    return max(1, n) if device.type == "cuda" else max(1, min(n, AUTO_CPU_SAMPLE_BATCH))


def uses_cuda_graphs(cuda_graphs: bool, compile: bool, device: torch.device) -> bool:
    """Whether training replays CUDA graphs (difflab.train_step): config `performance.cuda_graphs` on a CUDA device,
    and not under torch.compile (which captures its own)."""
    return bool(cuda_graphs) and not compile and device.type == "cuda"


def autocast(device: torch.device, precision: str):
    """The context the model's forward runs in: torch.autocast(device.type, bfloat16) for "bf16", a no-op for "fp32".

    Raises ValueError for another precision name (config validation names the key first)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    # No weight-cast cache: each weight is cast once per forward anyway, and a CUDA graph must not keep one.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)


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


def make_adam(parameters, lr: float, device: torch.device, capturable: bool = False) -> torch.optim.Adam:
    """Adam as the spec trains with it; on CUDA the fused kernel (one launch for all parameters, the same update
    rule: PyTorch's `fused=True`), `capturable` for CUDA-graph capture; elsewhere the default implementation
    (bit-identical CPU runs stay so)."""
    if device.type != "cuda":
        return torch.optim.Adam(parameters, lr=lr)
    return torch.optim.Adam(parameters, lr=lr, fused=True, capturable=capturable)
