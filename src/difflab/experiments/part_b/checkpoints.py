"""Inputs shared by the Part B experiments: trained UNets, their noise schedule, their training losses."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from difflab import DifflabError
from difflab.checkpoint import Checkpoint
from difflab.runtime import map_in_chunks

DIGITS = 10


def load_unets(paths: list[str], device, architectures: tuple[str, ...],
               weights: str = "raw") -> list[tuple[str, torch.nn.Module, Checkpoint]]:
    """(path, model in eval mode on `device` with its `weights` ('raw' | 'ema', Checkpoint.weights), its
    difflab.checkpoint.Checkpoint) per path, sorted by epoch.

    Raises DifflabError naming the file when a checkpoint holds another architecture than `architectures`
    (e.g. ('unconditional',)), or when two checkpoints hold the same epoch."""
    from difflab.checkpoint import load_model

    loaded = []
    for path in paths:
        model, ckpt = load_model(path, device, weights)
        arch = getattr(ckpt, "architecture", "classifier")  # load_model returns a plain dict for the classifier only
        if arch not in architectures:
            raise DifflabError(f"{path}: holds a {arch!r} model; expected {' or '.join(map(repr, architectures))}")
        loaded.append((str(path), model, ckpt))
    epochs = [ckpt.epoch for _, _, ckpt in loaded]
    if len(set(epochs)) != len(epochs):
        raise DifflabError(f"checkpoints {', '.join(map(str, paths))} repeat an epoch ({epochs})")
    return sorted(loaded, key=lambda item: item[2].epoch)


@torch.no_grad()
def apply_batched(fn, x: Tensor, batch_size: int) -> Tensor:
    """fn over x in chunks of `batch_size` along the first dimension (smaller chunks after an out-of-memory)."""
    return torch.cat(map_in_chunks(lambda a, b: fn(x[a:b]), x.shape[0], batch_size, "in a batched forward pass")[0])


def loss_curve(ckpt: Checkpoint, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training loss of a checkpoint: (losses (S,) per step, epoch_ends (E,) 1-based step of each epoch's
    end, epoch_means (E,) mean loss over each epoch's steps), S steps, E = ceil(S / steps_per_epoch).

    Raises DifflabError naming `path` when the checkpoint holds no losses."""
    losses, per_epoch = list(ckpt.losses or []), int(ckpt.steps_per_epoch or 0)
    if not losses or per_epoch < 1:
        raise DifflabError(f"{path}: checkpoint of epoch {ckpt.epoch} holds no training losses")
    epochs = math.ceil(len(losses) / per_epoch)
    ends = [min((e + 1) * per_epoch, len(losses)) for e in range(epochs)]
    means = [float(np.mean(losses[e * per_epoch: ends[e]])) for e in range(epochs)]
    return np.asarray(losses, dtype=np.float64), np.asarray(ends, dtype=np.int64), np.asarray(means, dtype=np.float64)


def as_images(x: Tensor) -> np.ndarray:
    """A batch (N, 1, 28, 28) as float32 numpy on the CPU, clipped to [0, 1] (the value range stored in results)."""
    return x.detach().clamp(0, 1).float().cpu().numpy()


def as_array(x: Tensor) -> np.ndarray:
    """A tensor as float32 numpy on the CPU, values unchanged (e.g. noisy images outside [0, 1])."""
    return x.detach().float().cpu().numpy()
