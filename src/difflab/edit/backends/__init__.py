"""Denoiser backends: each wraps one model behind the `Denoiser` protocol.

`load_backend(name, checkpoint, device)` builds one by its config name (`part_a.backend`). 'mnist' is Part B's
class-conditioned UNet; 'deepfloyd' is DeepFloyd IF stage I through diffusers (imported only when it is loaded).
"""

from __future__ import annotations

import importlib
import os

import torch

from difflab import DifflabError

# config name -> "module:class" with a from_checkpoint(path, device) constructor
BACKENDS: dict[str, str] = {
    "mnist": "difflab.edit.backends.mnist:MnistDenoiser",
    "deepfloyd": "difflab.edit.backends.deepfloyd:DeepFloydDenoiser",  # checkpoint = results/models/deepfloyd/backend.json
}


def load_backend(name: str, checkpoint: str | os.PathLike, device: torch.device | str = "cpu"):
    """The Denoiser named `name`, loaded from `checkpoint` on `device`."""
    if name not in BACKENDS:
        raise DifflabError(f"config key 'part_a.backend' is {name!r}; this build provides {', '.join(sorted(BACKENDS))}")
    module_name, class_name = BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class.from_checkpoint(checkpoint, device)
