"""`difflab partb sample`: N samples of a DDPM checkpoint as an npz for FID (Algorithm B.2 / B.4).

Moved unchanged from the old partb.py for the lead's samples stage (rules sample_for_fid / sample_cfg_sweep);
it still takes the old `--settings` dict (the part_b section plus seed and device). Random draws:
make_generator(seed, "partb", "sample", arch): x_{T-1}, then z per step.
"""

from __future__ import annotations

import numpy as np
import torch

from difflab import DifflabError
from difflab.experiments.part_b.checkpoints import DIGITS, ddpm_schedule, load_unets
from difflab.io import atomic_path


def setting(settings: dict, path: str):
    """settings[a][b] for path 'a.b'; a missing key is a DifflabError naming the config key."""
    node = settings
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            name = path if path in ("seed", "device", "profile") else f"part_b.{path}"
            raise DifflabError(f"--settings lacks config key '{name}'")
        node = node[key]
    return node


def start(settings: dict) -> tuple[torch.device, int]:
    """Threads, deterministic kernels, and the (device, seed) of a job."""
    from difflab.runtime import configure_threads, enable_determinism, resolve_device

    configure_threads()
    enable_determinism()
    return resolve_device(settings.get("device", "auto")), int(setting(settings, "seed"))


def sample(args) -> None:
    from difflab.runtime import derive_seed, make_generator
    from difflab.sampling import ddpm_sample

    device, seed = start(args.settings)
    (_, model, ckpt), = load_unets([args.checkpoint], device, ("time", "class"))
    arch = ckpt["architecture"]
    if args.n < 1:
        raise DifflabError(f"--n is {args.n}; expected a positive number of samples")
    labels, guidance = None, float("nan")
    if arch == "class":
        guidance = float(args.guidance if args.guidance is not None else setting(args.settings, "ddpm.guidance_scale"))
        labels = torch.arange(args.n, device=device) % DIGITS
    elif args.guidance is not None:
        raise DifflabError(f"{args.checkpoint}: --guidance applies to the class-conditioned model only; this is the time-conditioned one")
    keys = ("partb", "sample", arch)
    images, _ = ddpm_sample(model, ddpm_schedule(ckpt, args.checkpoint), args.n, make_generator(seed, *keys, device=device), device,
                            labels=labels, guidance_scale=None if labels is None else guidance,
                            batch_size=int(setting(args.settings, "ddpm.sample_batch_size")))
    arrays = {
        "images": images.clamp(0, 1)[:, 0].float().cpu().numpy(),
        "labels": (labels.cpu().numpy() if labels is not None else np.full(args.n, -1)).astype(np.int64),
        "guidance": np.float64(guidance),
        "epoch": np.int64(ckpt["epoch"]),
        "seed": np.int64(derive_seed(seed, *keys)),
    }
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    print(f"{args.n} samples of the {arch} DDPM (epoch {ckpt['epoch']}{'' if labels is None else f', guidance {guidance:g}'}) -> {args.out}")
