"""One optimizer step of a Part B objective, run eagerly or replayed as one CUDA graph.

The random numbers of a step are drawn first, in the documented order (denoiser: eps; time: t, eps; class: t, eps,
u with keep = u >= p_uncond), from the epoch's generator; the loss, its backward pass, the Adam step and the EMA
update then read them. Drawing apart from computing is what lets a CUDA graph replay the computing part: the graph
path draws into the graph's static input buffers with the same calls, so both paths see the same numbers.

CUDA graph path (config `performance.cuda_graphs`, CUDA only; PyTorch "CUDA Graphs", whole-network capture): the
first WARMUP_STEPS full batches are ordinary eager steps on a side stream (cuDNN and the allocator settle), the next
step is captured (forward, loss, backward, fused capturable Adam, EMA update) and then replayed for every further
full batch; a smaller last batch runs eagerly. A replay launches the step's ~hundreds of kernels at once, which is
what bounds these small UNets at batch 128 (launch overhead, not arithmetic).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.io import stderr_logger
from difflab.schedule import NoiseSchedule, add_gaussian_noise, forward_noise

log = stderr_logger("difflab")

WARMUP_STEPS = 3  # eager steps on a side stream before the capture (PyTorch's whole-network capture example)


def draw_step_noise(kind: str, n: int, num_timesteps: int, generator: torch.Generator, device: torch.device,
                    out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The random numbers of one training step of `n` images, in the documented order: "t" (n,) int64 uniform in
    [0, T) (time, class), "eps" (n, 1, 28, 28) N(0, 1) (all kinds), "u" (n,) uniform in [0, 1) (class: the class is
    kept when u >= p_uncond). With `out` (buffers of those shapes) the numbers are written into it, else into new
    tensors; the values are the same."""
    out = out if out is not None else {}
    draws = {}
    if kind != "denoiser":
        draws["t"] = torch.randint(0, num_timesteps, (n,), generator=generator, device=device, out=out.get("t"))
    draws["eps"] = torch.randn((n, 1, 28, 28), generator=generator, device=device, out=out.get("eps"))
    if kind == "class":
        draws["u"] = torch.rand(n, generator=generator, device=device, out=out.get("u"))
    return draws


def step_loss(kind: str, forward: nn.Module, x0: Tensor, draws: dict[str, Tensor], schedule: NoiseSchedule | None,
              sigma: float = 0.0, labels: Tensor | None = None, p_uncond: float = 0.0) -> Tensor:
    """The mean-squared loss of one batch x0 (N, 1, 28, 28) in [0, 1] given its draws (draw_step_noise):
    - denoiser (B.1): ||D_theta(x0 + sigma eps) - x0||^2;
    - time (Algorithm B.1): ||eps_theta(x_t, t/T) - eps||^2, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps;
    - class (Algorithm B.3): ||eps_theta(x_t, c * keep, t/T) - eps||^2, keep = (u >= p_uncond), labels (N,) int64.
    Returns a 0-d float32 tensor on x0's device."""
    eps = draws["eps"]
    if kind == "denoiser":
        return F.mse_loss(forward(add_gaussian_noise(x0, sigma, eps)), x0)
    t = draws["t"]
    x_t = forward_noise(x0, schedule.abar(t), eps)
    t_in = t.float() / schedule.num_timesteps
    if kind == "time":
        return F.mse_loss(forward(x_t, t_in), eps)
    keep = (draws["u"] >= p_uncond).float()
    return F.mse_loss(forward(x_t, labels, t_in, mask=keep), eps)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, first: bool, count: bool = True) -> None:
    """W_ema <- decay * W_ema + (1 - decay) * W over parameters and buffers (W_ema = W when `first`), then
    n_averaged += 1: torch.optim.swa_utils.AveragedModel.update_parameters with get_ema_multi_avg_fn(decay) and
    use_buffers=True, bit for bit (tested), except that whether this is the first update is the caller's `first`
    instead of a read of the counter n_averaged (a host synchronisation per step where it lives on the GPU).
    `count=False` leaves n_averaged (a CPU tensor, which a CUDA graph cannot update) to the caller."""
    averaged = list(ema.module.parameters()) + list(ema.module.buffers())
    current = list(model.parameters()) + list(model.buffers())
    if first:
        for a, c in zip(averaged, current, strict=True):
            a.copy_(c)
    else:
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - decay)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # BatchNorm's num_batches_tracked: the library's formula, truncated
                a.copy_(a * decay + c * (1 - decay))
    if count:
        ema.n_averaged += 1


class TrainStep:
    """Callable `step(x0, labels) -> loss` (0-d, on the device, detached): one Adam step (and EMA update) of
    `kind` on the batch, drawing its noise from `generator`. `cuda_graph`: replay full batches of `batch_size`
    as a CUDA graph (CUDA only; the optimizer must be Adam(fused=True, capturable=True), difflab.performance)."""

    def __init__(self, kind: str, forward: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, schedule: NoiseSchedule | None = None, sigma: float = 0.0,
                 p_uncond: float = 0.0, ema: nn.Module | None = None, ema_decay: float = 0.0,
                 batch_size: int = 0, cuda_graph: bool = False):
        self.kind, self.forward, self.model, self.optimizer = kind, forward, model, optimizer
        self.generator, self.schedule, self.sigma, self.p_uncond = generator, schedule, sigma, p_uncond
        self.ema, self.ema_decay, self.batch_size, self.cuda_graph = ema, ema_decay, batch_size, cuda_graph
        self.ema_first = ema is not None and int(ema.n_averaged) == 0  # one read per epoch, not per step
        self.device = generator.device
        self.num_timesteps = schedule.num_timesteps if schedule is not None else 0
        self.full_steps = 0  # full batches seen (the graph is captured after WARMUP_STEPS of them)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, Tensor] = {}  # the graph's inputs x0, labels and its output loss
        self.draws: dict[str, Tensor] = {}  # the graph's noise inputs (draw_step_noise's keys)
        self.stream = torch.cuda.Stream(self.device) if cuda_graph else None

    def _update(self, x0: Tensor, labels: Tensor | None, draws: dict[str, Tensor]) -> Tensor:
        """Loss, backward, Adam step, EMA update: the part a graph captures (gradients set to None before)."""
        loss = step_loss(self.kind, self.forward, x0, draws, self.schedule, self.sigma, labels, self.p_uncond)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            ema_update(self.ema, self.model, self.ema_decay, self.ema_first, count=False)
            self.ema_first = False
        return loss.detach()

    def _count(self) -> None:
        """One more EMA update done (AveragedModel's n_averaged, on the host: replays cannot touch it)."""
        if self.ema is not None:
            self.ema.n_averaged += 1

    def _eager(self, x0: Tensor, labels: Tensor | None) -> Tensor:
        draws = draw_step_noise(self.kind, x0.shape[0], self.num_timesteps, self.generator, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._update(x0, labels, draws)
        self._count()
        return loss

    def __call__(self, x0: Tensor, labels: Tensor | None = None) -> Tensor:
        if not self.cuda_graph or x0.shape[0] != self.batch_size:
            return self._eager(x0, labels)
        self.full_steps += 1
        if self.full_steps <= WARMUP_STEPS:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                loss = self._eager(x0, labels)
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            return loss
        if self.graph is None:
            try:
                self._capture(x0, labels)
            except RuntimeError as exc:  # a capture that fails leaves the weights as they were: go on eagerly
                log(f"CUDA graph capture failed ({str(exc).splitlines()[0]}); training this epoch eagerly")
                self.cuda_graph, self.graph = False, None
                torch.cuda.synchronize(self.device)
                return self._eager(x0, labels)
        self.static["x0"].copy_(x0)
        if labels is not None:
            self.static["labels"].copy_(labels)
        draw_step_noise(self.kind, x0.shape[0], self.num_timesteps, self.generator, self.device, out=self.draws)
        self.graph.replay()
        self._count()
        return self.static["loss"].clone()

    def _capture(self, x0: Tensor, labels: Tensor | None) -> None:
        """Record one step on static buffers (recording runs nothing; the caller replays it for this batch)."""
        self.static = {"x0": torch.empty_like(x0)}
        if labels is not None:
            self.static["labels"] = torch.empty_like(labels)
        # The draw buffers, shaped by draw_step_noise itself from a scratch generator (the epoch's stream is untouched:
        # each replay draws its own numbers into them).
        self.draws = draw_step_noise(self.kind, x0.shape[0], self.num_timesteps, torch.Generator(self.device), self.device)
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static["loss"] = self._update(self.static["x0"], self.static.get("labels"), self.draws)
