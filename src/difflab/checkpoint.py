"""Checkpoints: torch payloads with a SHA-256 trailer, written atomically.

File layout: the bytes of `torch.save(payload)` followed by b"\\nDIFFLAB-SHA256:" and the 64 hex digits of
their SHA-256 (difflab.io.with_checksum). A truncated or corrupted file fails the check and is reported,
never used; the workflow sets such files aside at start (difflab.io.quarantine_corrupt) and recomputes them.

Model checkpoints hold: architecture ('unconditional' | 'time' | 'class' | 'classifier'), hidden width,
the model's state_dict, the epoch, and for DDPMs the schedule (num_timesteps, beta_start, beta_end).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from difflab import DifflabError
from difflab.io import split_checksum, with_checksum, write_bytes


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
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


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model stored in a checkpoint, in eval mode on `device`. Returns (model, checkpoint dict)."""
    from difflab.models import build_model

    ckpt = load_checkpoint(path)
    arch = ckpt.get("architecture")
    if arch == "classifier":
        from difflab.metrics.classifier import build_classifier

        model = build_classifier(ckpt["width"])
    else:
        model = build_model(arch, ckpt["hidden"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DifflabError(f"{path}: weights do not fit architecture {arch!r} with width {ckpt.get('hidden', ckpt.get('width'))}: {first[1].strip() if len(first) > 1 else first[0]}") from None
    return model.to(device).eval(), ckpt
