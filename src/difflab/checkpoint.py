"""Checkpoints: torch payloads with a SHA-256 trailer, written atomically, and the typed UNet checkpoint.

File layout: the bytes of `torch.save(payload)` followed by b"\\nDIFFLAB-SHA256:" and the 64 hex digits of
their SHA-256 (difflab.io.with_checksum). A truncated or corrupted file fails the check and is reported,
never used; the workflow sets such files aside at start (difflab.io.quarantine_corrupt) and recomputes them.

The payload of a Part B UNet checkpoint (written by difflab.train) is described field by field by `Checkpoint`;
files keep holding the plain dict (`Checkpoint.to_payload`), so old and new files load alike. The MNIST
classifier's checkpoint (commands/metrics.py) stays a plain dict: architecture 'classifier', width, model,
test_accuracy, epoch, history, train_images, settings; it is read in three places only.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import torch

from difflab import DifflabError
from difflab.io import split_checksum, with_checksum, write_bytes

DDPM_KEYS = ("num_timesteps", "beta_start", "beta_end", "p_uncond")
WEIGHTS = ("raw", "ema")  # which weight set of a UNet checkpoint samples (Checkpoint.weights)
EMA_PREFIX = "module."  # torch.optim.swa_utils.AveragedModel keeps the averaged model as its submodule `module`


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One epoch of a Part B UNet (difflab.train): the weights plus everything a resumed epoch needs.

    Fields, in the order the payload dict holds them:
    - architecture: 'unconditional' (denoiser, B.1) | 'time' (Algorithm B.1) | 'class' (Algorithm B.3);
    - kind: the training objective, 'denoiser' | 'time' | 'class' (train.ARCHITECTURE_OF maps it to architecture);
    - hidden: the UNet's hidden width D (channels of the first level), an int;
    - epoch: completed training epochs, 0 for the freshly initialised model;
    - model: the UNet's state_dict, parameter name -> CPU float32 tensor (shapes as models.build_model makes them);
    - optimizer: torch.optim.Adam state_dict (step counts, first/second moments, param_groups with the current lr);
    - scheduler: ExponentialLR state_dict, once-per-epoch lr decay (None for the denoiser, which keeps its lr);
    - losses: the training loss (mean squared error, unitless) of every optimizer step so far, in step order;
    - steps_per_epoch: optimizer steps in one epoch, ceil(training images / batch_size); 0 at epoch 0;
    - epoch_seconds: wall-clock seconds of each trained epoch (len == epoch);
    - images_per_second: training images per second of the last epoch (None at epoch 0);
    - settings: the job's training settings (difflab.settings.pipeline.models.train_<kind>, as a dict);
    - seed: the run's base seed; init, shuffling and noise generators derive from (seed, kind, epoch);
    - sigma: the denoiser's training noise level (pixels in [0, 1]); denoiser only, else None;
    - num_timesteps, beta_start, beta_end: the linear beta schedule T, beta_0, beta_{T-1} (DDPMs only, else None);
    - p_uncond: probability the class is dropped to the zero vector (class DDPM; 0.0 for time, None for denoiser);
    - ema_state: the exponential moving average of the weights (DDPMs; None for the denoiser and for checkpoints
      written before EMA): the state_dict of torch.optim.swa_utils.AveragedModel, i.e. 'n_averaged' (int64 scalar,
      optimizer steps averaged so far, 0 at epoch 0) and 'module.<name>' for every entry of `model` (parameters and
      BatchNorm buffers, averaged alike), CPU tensors. `weights('ema')` gives it as a UNet state_dict.
    """

    architecture: str
    kind: str
    hidden: int
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    losses: list[float]
    steps_per_epoch: int
    epoch_seconds: list[float]
    images_per_second: float | None
    settings: dict[str, Any]
    seed: int
    sigma: float | None = None
    num_timesteps: int | None = None
    beta_start: float | None = None
    beta_end: float | None = None
    p_uncond: float | None = None
    ema_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | os.PathLike) -> "Checkpoint":
        """The checkpoint of a loaded payload dict. Keys the dataclass does not know are ignored.

        Raises DifflabError naming `path` and the first missing key: every field without a default, plus sigma
        for architecture 'unconditional' and num_timesteps, beta_start, beta_end, p_uncond for 'time' / 'class'."""
        if not isinstance(payload, dict):
            raise DifflabError(f"{path}: holds a {type(payload).__name__}, expected a checkpoint dict")
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is dataclasses.MISSING]
        if payload.get("architecture") == "unconditional":
            required.append("sigma")
        elif payload.get("architecture") in ("time", "class"):
            required.extend(DDPM_KEYS)
        for key in required:
            if key not in payload:
                raise DifflabError(f"{path}: {payload.get('architecture', 'UNet')!r} checkpoint lacks the key {key!r}")
        return cls(**{f.name: payload[f.name] for f in fields if f.name in payload})

    def to_payload(self) -> dict[str, Any]:
        """The dict saved to disk: the fields in declaration order, optional ones only when set (not None), so a
        payload round-trips through from_payload unchanged and torch.save writes the same bytes as before."""
        payload = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value is not None:
                payload[f.name] = value
        return payload

    def schedule(self):
        """The DDPM's linear noise schedule, NoiseSchedule.linear(beta_start, beta_end, num_timesteps) (spec B.2).
        Raises DifflabError for a checkpoint without one (the denoiser)."""
        from difflab.schedule import NoiseSchedule

        if self.num_timesteps is None or self.beta_start is None or self.beta_end is None:
            raise DifflabError(f"the {self.architecture!r} checkpoint of epoch {self.epoch} has no noise schedule; expected a DDPM")
        return NoiseSchedule.linear(self.beta_start, self.beta_end, self.num_timesteps)

    def weights(self, which: str = "raw") -> dict[str, torch.Tensor]:
        """The UNet state_dict to sample with: 'raw' = the trained weights (`model`), 'ema' = their exponential moving
        average (`ema_state` without AveragedModel's 'module.' prefix and its 'n_averaged' counter).

        Raises DifflabError for another `which`, or for 'ema' when the checkpoint holds no average (the denoiser, or a
        DDPM trained before EMA existed: retrain it, or sample its raw weights)."""
        if which not in WEIGHTS:
            raise DifflabError(f"weights {which!r}: expected one of {', '.join(WEIGHTS)}")
        if which == "raw":
            return self.model
        if self.ema_state is None:
            raise DifflabError(f"the {self.architecture!r} checkpoint of epoch {self.epoch} holds no EMA weights (trained "
                               "without part_b.ddpm.ema_decay); retrain it or sample the raw weights")
        return {name.removeprefix(EMA_PREFIX): value for name, value in self.ema_state.items() if name.startswith(EMA_PREFIX)}


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any] | Checkpoint) -> None:
    """Write `payload` (a dict, or a Checkpoint as its to_payload dict) atomically with its checksum trailer."""
    if isinstance(payload, Checkpoint):
        payload = payload.to_payload()
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes(path, with_checksum(buf.getvalue()))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint; raise DifflabError naming the file if it is missing, truncated or corrupt."""
    path = Path(path)
    if not path.exists():
        raise DifflabError(f"{path}: checkpoint not found")
    body, problem = split_checksum(path.read_bytes())
    if problem:
        raise DifflabError(f"{path}: unusable checkpoint ({problem}); rerun the workflow: it sets corrupt "
                           "checkpoints aside and recomputes them")
    return torch.load(io.BytesIO(body), map_location=map_location, weights_only=False)


def load_unet_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A verified UNet checkpoint as a Checkpoint (tensors on the CPU). Raises DifflabError naming the file when it
    is missing, corrupt, holds the classifier, or lacks a key (Checkpoint.from_payload)."""
    payload = load_checkpoint(path)
    if isinstance(payload, dict) and payload.get("architecture") == "classifier":
        raise DifflabError(f"{path}: holds the MNIST classifier; expected a UNet checkpoint")
    return Checkpoint.from_payload(payload, path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", weights: str = "raw"):
    """Rebuild the model stored in a checkpoint, in eval mode on `device`, with its `weights` ('raw' | 'ema', UNets
    only; Checkpoint.weights). Returns (model, checkpoint): a Checkpoint for the UNets, the plain dict for the
    classifier. Raises DifflabError naming the file when the checkpoint is unusable, lacks a key, holds no such
    weights, or its weights do not fit its architecture and width."""
    from difflab.models import build_model

    payload = load_checkpoint(path)
    arch = payload.get("architecture")
    if arch == "classifier":
        from difflab.metrics.classifier import build_classifier

        if weights != "raw":
            raise DifflabError(f"{path}: the MNIST classifier has raw weights only, not {weights!r}")

        ckpt, width, state = payload, payload["width"], payload["model"]
        model = build_classifier(width)
    else:
        ckpt = Checkpoint.from_payload(payload, path)
        try:
            width, state = ckpt.hidden, ckpt.weights(weights)
        except DifflabError as exc:
            raise DifflabError(f"{path}: {exc}") from None
        model = build_model(arch, width)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DifflabError(f"{path}: weights do not fit architecture {arch!r} with width {width}: {first[1].strip() if len(first) > 1 else first[0]}") from None
    return model.to(device).eval(), ckpt
