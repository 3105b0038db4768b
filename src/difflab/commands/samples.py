"""`difflab sample`: N samples of a DDPM checkpoint (Algorithm B.2 / B.4) as an npz for FID.

    python -m difflab sample --job samples.class --checkpoint results/models/class/epoch_20.pt \
        --settings '<json>' --out results/samples/class/epoch_20.npz
    python -m difflab sample --job samples.cfg_sweep --guidance 5 ...   (one guidance scale of the CFG sweep)
    python -m difflab sample --job samples.class --weights ema ...      (the EMA weights: epoch_20_ema.npz)

The npz holds `images` (N, 28, 28) float32 in [0, 1], `labels` (N,) int64 (digit i % 10, or -1 for the time
model), `guidance` (nan for the time model), `model` ('time' | 'class'), `epoch` and `seed` (the derived seed of
the sampling generator, whose keys are ('partb', 'sample', model)).
"""

from __future__ import annotations

import argparse

import numpy as np

from difflab import DifflabError
from difflab.io import atomic_path

DIGITS = 10


def write_samples(job: str, settings, checkpoint: str, out: str, guidance: float | None = None,
                  weights: str = "raw") -> None:
    """Sample `settings.num_images` (or `cfg_sweep_num_images`) images of `checkpoint`'s `weights` ('raw' | 'ema')
    into `out`. Both weight sets draw the same noise (same generator keys), so raw and EMA samples differ by the
    weights only. Raises DifflabError naming the checkpoint when it holds no such weights or another model."""
    import torch

    from difflab.checkpoint import load_model
    from difflab.performance import accelerate, sample_batch, sample_precision
    from difflab.runtime import derive_seed, make_generator, start_job
    from difflab.sampler import ddim_eta_of
    from difflab.sampling import ddpm_sample

    device, seed = start_job(settings.device, settings.seed)
    model, ckpt = load_model(checkpoint, device, weights)
    arch = getattr(ckpt, "architecture", "classifier")  # load_model returns a plain dict for the classifier only
    if arch not in ("time", "class"):
        raise DifflabError(f"{checkpoint}: holds a {arch!r} model; expected a 'time' or 'class' DDPM")
    if (arch == "class") != (job != "samples.time"):
        raise DifflabError(f"{checkpoint}: holds the {arch} model, which job {job!r} does not sample")
    n = settings.cfg_sweep_num_images if job == "samples.cfg_sweep" else settings.num_images
    labels = None
    if arch == "class":
        guidance = settings.guidance_scale if guidance is None else guidance
        labels = torch.arange(n, device=device) % DIGITS
    schedule = ckpt.schedule()
    keys = ("partb", "sample", arch)
    precision = sample_precision(settings.sample_precision, device)  # performance.sample_precision / .compile
    forward = accelerate(model, precision, settings.compile, device)
    images, _ = ddpm_sample(forward, schedule, n, make_generator(seed, *keys, device=device), device, labels=labels,
                            guidance_scale=guidance if labels is not None else None, batch_size=sample_batch(settings.sample_batch_size, n, device),
                            ddim_eta=ddim_eta_of(settings.sampler, settings.ddim_eta))
    arrays = {
        "images": images.clamp(0, 1)[:, 0].float().cpu().numpy(),
        "labels": (labels.cpu().numpy() if labels is not None else np.full(n, -1)).astype(np.int64),
        "guidance": np.float64(guidance if labels is not None else float("nan")),
        "model": np.str_(arch),
        "epoch": np.int64(ckpt.epoch),
        "seed": np.int64(derive_seed(seed, *keys)),
        "precision": np.str_(precision),  # "auto" resolved on this device (difflab.performance)
    }
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    print(f"{n} samples of the {arch} DDPM ({weights} weights, epoch {ckpt.epoch}{'' if labels is None else f', guidance {guidance:g}'}, "
          f"{precision}) -> {out}")


def cli(argv: list[str]) -> None:
    from difflab.settings import from_json

    parser = argparse.ArgumentParser(prog="difflab sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", required=True, choices=["samples.time", "samples.class", "samples.cfg_sweep"])
    parser.add_argument("--checkpoint", required=True, help="results/models/<time|class>/epoch_<e>.pt")
    parser.add_argument("--settings", required=True, help="JSON of the job's settings (difflab.settings.pipeline)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (samples.cfg_sweep only)")
    parser.add_argument("--weights", choices=["raw", "ema"], default="raw", help="the checkpoint's raw or EMA weights")
    parser.add_argument("--out", required=True, help="npz to write")
    args = parser.parse_args(argv)
    if (args.guidance is None) == (args.job == "samples.cfg_sweep"):
        raise DifflabError("--guidance is required by samples.cfg_sweep and taken by no other job")
    write_samples(args.job, from_json(args.job, args.settings), args.checkpoint, args.out, args.guidance, args.weights)
