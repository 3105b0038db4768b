"""Training, one epoch per job: the DAG chains epoch_{e-1}.pt -> epoch_{e}.pt, so an interrupted run
resumes at the last completed epoch and no completed epoch is trained twice.

Three Part B objectives (CS180 project 5):
- denoiser (B.1): z = x + sigma eps, loss ||D_theta(z) - x||^2;
- time (Algorithm B.1): t ~ U{0..T-1}, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss ||eps_theta(x_t, t/T) - eps||^2;
- class (Algorithm B.3): as time, plus a one-hot class that is replaced by the zero vector with
  probability p_uncond, loss ||eps_theta(x_t, c, t/T) - eps||^2.

Every epoch draws its shuffling and noise from a generator seeded by (seed, model, epoch), and the
checkpoint carries model, optimizer and learning-rate schedule state, so a resumed run equals an
uninterrupted one bit for bit on CPU.

The DDPMs also keep an exponential moving average (EMA) of their weights (Ho et al. 2020, sec. 4), updated after
every optimizer step: W_ema <- decay * W_ema + (1 - decay) * W, with W_ema = W after the first step
(torch.optim.swa_utils.AveragedModel, updated by difflab.train_step.ema_update, which equals its update_parameters
bit for bit without a host synchronisation; config part_b.ddpm.ema_decay). The average is
stored in the checkpoint (Checkpoint.ema_state, with its step counter n_averaged), so it resumes bit for bit too.
It reads the weights only and draws no random numbers: the raw weights are the same with or without it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from difflab import DifflabError
from difflab.checkpoint import Checkpoint
from difflab.models import build_model
from difflab.performance import accelerate, make_adam, train_precision, uses_cuda_graphs
from difflab.runtime import derive_seed, make_generator
from difflab.train_step import TrainStep

ARCHITECTURE_OF = {"denoiser": "unconditional", "time": "time", "class": "class"}
CHECK_EVERY = 25  # steps between loss checks (one host synchronisation each; a NaN still names its own step)


def lr_gamma(settings: dict) -> float:
    """ExponentialLR factor: lr decays by lr_decay_total over all epochs, gamma = lr_decay_total ** (1 / epochs)."""
    return settings["lr_decay_total"] ** (1.0 / settings["epochs"])


def make_optimizer(model: nn.Module, kind: str, settings: dict, device: torch.device = torch.device("cpu"),
                   capturable: bool = False):
    optimizer = make_adam(model.parameters(), settings["lr"], device, capturable)
    scheduler = None if kind == "denoiser" else torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_gamma(settings))
    return optimizer, scheduler


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """The EMA of `model`'s weights: W_ema <- decay * W_ema + (1 - decay) * W after each `update_parameters(model)`,
    W_ema = W at the first update (torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn(decay)). It averages
    the BatchNorm running statistics too (use_buffers=True), so the EMA weights are used with matching statistics.
    `decay` in [0, 1): the average's time constant is 1 / (1 - decay) optimizer steps."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A module's state_dict as detached CPU tensors (what checkpoints store)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """optimizer.load_state_dict(state), keeping the implementation flags this optimizer was made with (fused,
    capturable, foreach: they follow the device, difflab.performance.make_adam). PyTorch restores them from the saved
    param_groups, so without this a chain started on a CPU would never use the fused or capturable Adam on a GPU."""
    state = {**state, "param_groups": [
        {**saved, **{k: ours[k] for k in ("fused", "capturable", "foreach") if k in ours}}
        for saved, ours in zip(state["param_groups"], optimizer.param_groups, strict=True)]}
    optimizer.load_state_dict(state)


def initial_checkpoint(kind: str, settings: dict, seed: int) -> Checkpoint:
    """Epoch 0: freshly initialised weights (seeded) and empty optimizer state."""
    torch.manual_seed(derive_seed(seed, "init", kind))
    model = build_model(ARCHITECTURE_OF[kind], settings["hidden"])
    optimizer, scheduler = make_optimizer(model, kind, settings)
    if kind == "denoiser":
        extra = {"sigma": settings["sigma"]}
    else:
        extra = {"num_timesteps": settings["num_timesteps"], "beta_start": settings["beta_start"],
                 "beta_end": settings["beta_end"], "p_uncond": settings["p_uncond"] if kind == "class" else 0.0}
        extra["ema_state"] = cpu_state(make_ema(model, settings["ema_decay"]))  # n_averaged = 0: no step yet
    return Checkpoint(architecture=ARCHITECTURE_OF[kind], kind=kind, hidden=settings["hidden"], epoch=0,
                      model=model.state_dict(), optimizer=optimizer.state_dict(),
                      scheduler=scheduler.state_dict() if scheduler else None, losses=[], steps_per_epoch=0,
                      epoch_seconds=[], images_per_second=None, settings=settings, seed=seed, **extra)


def optimizer_step(loss: Tensor, optimizer: torch.optim.Optimizer) -> Tensor:
    """One gradient step on a scalar loss; returns the loss, detached, on its device (no host synchronisation: check
    it with raise_if_diverged every few steps)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def raise_if_diverged(losses: Tensor, first_step: int, what: str, epoch: int, steps: int, lr_key: str) -> list[float]:
    """The losses of steps first_step, first_step + 1, ... (a 1-D tensor) as floats, one host synchronisation.

    Every training loop (the UNets, the classifier) checks its losses here, so a NaN or infinite loss stops training
    with one line naming the epoch, the first bad step and the config key of the learning rate to lower (raises
    DifflabError) before a checkpoint of garbage is written."""
    values = losses.tolist()
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            raise DifflabError(f"{what} diverged: loss is {value} at epoch {epoch}, step {first_step + offset + 1}/{steps}; "
                               f"lower {lr_key}")
    return values


def train_one_epoch(ckpt: Checkpoint, images: Tensor, labels: Tensor, device: torch.device,
                    show_progress: bool = True) -> Checkpoint:
    """Train the checkpointed model for one more epoch and return the next checkpoint."""
    kind, settings, seed = ckpt.kind, ckpt.settings, ckpt.seed
    epoch = ckpt.epoch + 1
    model = build_model(ckpt.architecture, ckpt.hidden).to(device)
    model.load_state_dict(ckpt.model)
    model.train()
    precision = train_precision(settings["train_precision"], device)  # difflab.performance: "auto" resolved here
    forward = accelerate(model, precision, settings["compile"], device)
    graphs = uses_cuda_graphs(settings["cuda_graphs"], settings["compile"], device)
    optimizer, scheduler = make_optimizer(model, kind, settings, device, capturable=graphs)
    load_optimizer_state(optimizer, ckpt.optimizer)
    if scheduler is not None:
        scheduler.load_state_dict(ckpt.scheduler)
    schedule = ema = None
    if kind != "denoiser":
        schedule = ckpt.schedule().to(device)
        if ckpt.ema_state is None:
            raise DifflabError(f"the {kind} checkpoint of epoch {ckpt.epoch} holds no EMA weights (written before "
                               f"part_b.ddpm.ema_decay existed); delete results/models/{kind}/chain to retrain")
        ema = make_ema(model, settings["ema_decay"])
        ema.load_state_dict(ckpt.ema_state)

    generator = make_generator(seed, "train", kind, epoch, device=device)
    order = torch.randperm(images.shape[0], generator=generator, device=device)
    batch_size = settings["batch_size"]
    steps = math.ceil(images.shape[0] / batch_size)
    losses: list[float] = []
    pending: list[Tensor] = []  # losses on the device since the last check
    lr_key = f"part_b.{'denoiser' if kind == 'denoiser' else 'ddpm'}.lr"
    step_fn = TrainStep(kind, forward, model, optimizer, generator, schedule, settings.get("sigma", 0.0),
                        ckpt.p_uncond if kind == "class" else 0.0, ema, settings.get("ema_decay", 0.0), batch_size, graphs)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"{kind} epoch {epoch}/{settings['epochs']}", unit="batch", disable=not show_progress, mininterval=2.0)
    for step in bar:
        idx = order[step * batch_size: (step + 1) * batch_size]
        pending.append(step_fn(images[idx], labels[idx] if kind == "class" else None))
        if len(pending) == CHECK_EVERY or step == steps - 1:
            losses += raise_if_diverged(torch.stack(pending), step + 1 - len(pending), f"{kind} training", epoch, steps, lr_key)
            pending.clear()
            seen = (step + 1) * batch_size
            bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{seen / (time.perf_counter() - start):.0f}", refresh=False)
    if scheduler is not None:
        scheduler.step()  # once per epoch (spec B.2.2)
    seconds = time.perf_counter() - start
    return dataclasses.replace(
        ckpt,
        epoch=epoch,
        model=cpu_state(model),
        ema_state=cpu_state(ema) if ema is not None else None,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler else None,
        losses=ckpt.losses + losses,
        steps_per_epoch=steps,
        epoch_seconds=ckpt.epoch_seconds + [seconds],
        images_per_second=images.shape[0] / seconds,
    )
