"""Test inputs for the Part B experiments: a synthetic MNIST-format npz, tiny random UNet checkpoints (D = 8,
T = 12) in train.py's format, tidy FID CSVs, and the settings JSON of each job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from difflab import data
from difflab.checkpoint import save_checkpoint
from difflab.metrics.tables import write_metrics
from difflab.models import build_model

T = 12
STEPS = 6  # training steps per epoch in the fake loss history
EXTRACTOR = "mnist-classifier(width=8)"
INCEPTION = "inception-v3-compat(pool3, 2048)"
COMMON = {"seed": 180, "device": "cpu"}
SAMPLER = {"sampler": "ddpm", "ddim_eta": 0.0}
SETTINGS = {
    "denoiser": {**COMMON, "noise_levels": [0.0, 0.5, 1.0], "ood_num_images": 24, "sample_batch_size": 16},
    "ood": {**COMMON, "noise_levels": [0.0, 0.5, 1.0], "ood_num_images": 24, "blur_holdout": 16,
            "blur_sigmas": [0.25, 0.5, 1.0, 2.0, 3.0], "sample_batch_size": 16},
    "time_grids": {**COMMON, **SAMPLER, "time_grid_samples": 10, "sample_batch_size": 16, "sample_weights": "raw"},
    "class_grids": {**COMMON, **SAMPLER, "class_grid_per_digit": 2, "guidance_scale": 5.0, "sample_batch_size": 16, "sample_weights": "raw"},
    "time_gif": {**COMMON, **SAMPLER, "time_grid_samples": 10, "sample_batch_size": 16, "gif_frames": 4, "sample_weights": "raw"},
    "class_gif": {**COMMON, **SAMPLER, "class_grid_per_digit": 2, "guidance_scale": 5.0, "sample_batch_size": 16, "gif_frames": 4, "sample_weights": "raw"},
    "cfg": {**COMMON, **SAMPLER, "cfg_sweep": [0, 5], "sample_batch_size": 16, "sample_weights": "raw"},
    "time_steps": {**COMMON, "step_counts": [2, 12], "timestep_spacing": "leading", "num_images": 8, "ddim_eta": 0.0,
                   "sample_batch_size": 16, "kid_subset_size": 1000, "kid_subsets": 10},
    "class_steps": {**COMMON, "step_counts": [2, 12], "timestep_spacing": "leading", "num_images": 8, "ddim_eta": 0.0,
                    "sample_batch_size": 16, "kid_subset_size": 1000, "kid_subsets": 10, "guidance_scale": 5.0},
    "steps": {},
    "cfg_tradeoff": {},
    "fid": {},
    "ema": {"ema_decay": 0.999},
    "models": {},
}


def settings(name: str, **changes) -> str:
    """The --settings JSON of job part_b.<name>, with `changes` applied."""
    return json.dumps({**SETTINGS[name], **changes})


def smooth_digits(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth uint8 images (random 4x4 patterns upscaled bilinearly), so blurring helps against noise."""
    coarse = torch.from_numpy(rng.random((n, 1, 4, 4), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(28, 28), mode="bilinear", align_corners=False)
    return (fine[:, 0].numpy() * 255).round().astype(np.uint8)


def write_npz(folder: Path, monkeypatch) -> Path:
    """A synthetic mnist.npz (40 train, 48 test images) whose hashes difflab.data accepts while `monkeypatch` holds."""
    rng = np.random.default_rng(0)
    arrays = {"train_images": smooth_digits(40, rng), "train_labels": rng.integers(0, 10, 40).astype(np.uint8),
              "test_images": smooth_digits(48, rng), "test_labels": rng.integers(0, 10, 48).astype(np.uint8)}
    path = folder / "mnist.npz"
    data.write_mnist(path, arrays)
    for name, digest in data.array_hashes(arrays).items():
        monkeypatch.setitem(data.MNIST_SHA256, name, digest)
    return path


def loss_history(epoch: int) -> list[float]:
    return [1.0 / (1 + 0.5 * i) for i in range(STEPS * epoch)]


def unet_payload(architecture: str, model_state: dict, hidden: int = 8, epoch: int = 1, **extra) -> dict:
    """A UNet checkpoint dict with every key difflab.checkpoint.Checkpoint requires (training state left empty);
    `extra` adds or overrides keys, e.g. the schedule num_timesteps, beta_start, beta_end, p_uncond."""
    kind = {"unconditional": "denoiser"}.get(architecture, architecture)
    return {"architecture": architecture, "kind": kind, "hidden": hidden, "epoch": epoch, "model": model_state,
            "optimizer": {}, "scheduler": None, "losses": [], "steps_per_epoch": 0, "epoch_seconds": [],
            "images_per_second": None, "settings": {}, "seed": 0, **extra}


def make_checkpoint(path: Path, kind: str, epoch: int, weights_seed: int | None = None, ema_seed: int | None = None) -> dict:
    """A checkpoint in train.py's format with random weights (seeded by `weights_seed`, default the epoch); with
    `ema_seed`, an `ema_state` (AveragedModel layout) holding other random weights seeded by it."""
    arch = {"denoiser": "unconditional", "time": "time", "class": "class"}[kind]
    torch.manual_seed(epoch if weights_seed is None else weights_seed)
    model = build_model(arch, 8)
    ckpt = unet_payload(arch, model.state_dict(), epoch=epoch, losses=loss_history(epoch), steps_per_epoch=STEPS,
                        epoch_seconds=[1.5] * epoch, images_per_second=40.0)
    if kind == "denoiser":
        ckpt["sigma"] = 0.5
    else:
        ckpt.update(num_timesteps=T, beta_start=1e-4, beta_end=0.02, p_uncond=0.1 if kind == "class" else 0.0)
    if ema_seed is not None:
        torch.manual_seed(ema_seed)
        averaged = build_model(arch, 8).state_dict()
        ckpt["ema_state"] = {"n_averaged": torch.tensor(3), **{f"module.{k}": v for k, v in averaged.items()}}
    save_checkpoint(path, ckpt)
    return ckpt


def make_classifier(path: Path) -> None:
    from difflab.metrics.classifier import build_classifier

    save_checkpoint(path, {"architecture": "classifier", "width": 8, "model": build_classifier(8).state_dict(), "epoch": 1,
                           "history": [{"epoch": 1, "loss": 0.3, "seconds": 2.5, "images_per_second": 800.0}]})


def cfg_csvs(folder: Path, values=((0, 31.5, 0.42), (5, 12.25, 0.875))) -> list[str]:
    """FID CSVs of the guidance sweep as the FID job writes them: (gamma, FID, class accuracy) per file,
    an Inception FID beside the MNIST one, and a KID row that the summaries must ignore."""
    paths = []
    for gamma, fid, acc in values:
        base = {"experiment": "cfg_sweep", "model": "class", "epoch": 2, "parameter": f"guidance={gamma}", "n": 64}
        path = folder / f"cfg_guidance_{gamma}.csv"
        write_metrics(path, [{**base, "metric": "fid", "value": fid, "extractor": EXTRACTOR},
                             {**base, "metric": "kid", "value": 0.5, "extractor": EXTRACTOR},
                             {**base, "metric": "fid", "value": fid * 4, "extractor": INCEPTION},
                             {**base, "metric": "class_accuracy", "value": acc, "extractor": EXTRACTOR}])
        paths.append(str(path))
    return paths


def ema_csvs(folder: Path, fids=(("time", 1, 40.0, 44.0), ("time", 2, 18.5, 16.0), ("class", 1, 35.0, 38.0),
                                   ("class", 2, 9.75, 8.5))) -> list[str]:
    """FID CSVs of raw and EMA weights per (model, epoch): rows (model, epoch, raw FID, EMA FID), KID = FID / 100,
    class accuracy 0.6 raw and 0.7 EMA, n = 64; EMA rows in experiment ddpm_<model>_ema."""
    paths = []
    for kind, epoch, raw, ema in fids:
        for suffix, fid, acc in (("", raw, 0.6), ("_ema", ema, 0.7)):
            base = {"experiment": f"ddpm_{kind}{suffix}", "model": kind, "epoch": epoch,
                    "parameter": "guidance=5" if kind == "class" else "", "n": 64, "extractor": EXTRACTOR}
            rows = [{**base, "metric": "fid", "value": fid}, {**base, "metric": "kid", "value": fid / 100},
                    {**base, "metric": "kid_std", "value": 0.01}]
            if kind == "class":
                rows.append({**base, "metric": "class_accuracy", "value": acc})
            paths.append(folder / f"{kind}_epoch_{epoch}{suffix}.csv")
            write_metrics(paths[-1], rows)
    return [str(p) for p in paths]


def fid_csvs(folder: Path) -> list[str]:
    """FID CSVs per evaluation epoch (time: 40, 18.5; class: 35, 9.75 at epochs 1, 2), the floor and the classifier."""
    paths = []
    for kind, fids in (("time", [40.0, 18.5]), ("class", [35.0, 9.75])):
        for epoch, fid in zip((1, 2), fids):
            base = {"experiment": f"ddpm_{kind}", "model": kind, "epoch": epoch, "parameter": "guidance=5" if kind == "class" else "", "n": 64}
            rows = [{**base, "metric": "fid", "value": fid, "extractor": EXTRACTOR}, {**base, "metric": "kid", "value": 0.1, "extractor": EXTRACTOR}]
            if kind == "class":
                rows.append({**base, "metric": "class_accuracy", "value": 0.5 + 0.2 * epoch, "extractor": EXTRACTOR})
            paths.append(folder / f"{kind}_{epoch}.csv")
            write_metrics(paths[-1], rows)
    paths.append(folder / "floor.csv")
    write_metrics(paths[-1], [{"experiment": "fid_floor", "model": "mnist-train", "metric": "fid", "value": 0.625, "n": 64, "extractor": EXTRACTOR}])
    paths.append(folder / "classifier.csv")
    write_metrics(paths[-1], [{"experiment": "classifier", "model": "cnn", "epoch": 1, "parameter": "width=8", "metric": "test_accuracy", "value": 0.9712, "n": 48}])
    return [str(p) for p in paths]
