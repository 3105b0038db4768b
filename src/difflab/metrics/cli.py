"""`difflab metrics <sub-verb>`: train the MNIST classifier, score generated samples, measure the FID floor.

    train-classifier  train the CNN, write its checkpoint and its test accuracy
    fid               FID and KID of a samples file against as many MNIST test images (+ class accuracy)
    real-floor        FID and KID of the first N train images against the first N test images (the floor)

Every sub-verb writes a tidy metrics CSV (see difflab.metrics.tables).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from difflab import DifflabError
from difflab.cli import json_object
from difflab.runtime import configure_threads, enable_determinism, resolve_device

INCEPTION_MODES = ("auto", "off")


def optional_int(text: str) -> int | None:
    """argparse type for --epoch: an integer, or '' for none."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or '', got {text!r}") from None


def load_mnist(path: str, split: str, device: torch.device, subset: int = 0):
    """(images N x 1 x 28 x 28 in [0, 1], labels) from results/data/mnist.npz, with a clear error if it is missing."""
    if not Path(path).is_file():
        raise DifflabError(f"{path}: MNIST data file not found; run `difflab data` (the Snakemake rule 'data') first")
    from difflab.data import mnist_tensors

    return mnist_tensors(path, split, device=device, subset=subset)


def load_classifier(path: str, device: torch.device):
    from difflab.checkpoint import load_model

    model, ckpt = load_model(path, device)
    if ckpt.get("architecture") != "classifier":
        raise DifflabError(f"{path}: holds a {ckpt.get('architecture')!r} model; expected the MNIST classifier")
    return model, ckpt


def load_samples(path: str) -> tuple[torch.Tensor, np.ndarray]:
    """Generated samples: npz with `images` float N x 28 x 28 in [0, 1] and `labels` int (class, or -1)."""
    if not Path(path).is_file():
        raise DifflabError(f"{path}: samples file not found")
    with np.load(path) as data:
        if "images" not in data or "labels" not in data:
            raise DifflabError(f"{path}: expected arrays 'images' and 'labels', found {', '.join(data.files) or 'none'}")
        images, labels = data["images"], data["labels"]
    if images.ndim >= 1 and images.shape[0] < 2:
        raise DifflabError(f"{path}: holds {images.shape[0]} images; FID needs at least 2")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype.kind != "f":
        raise DifflabError(f"{path}: 'images' is {images.dtype} {images.shape}; expected float N x 28 x 28")
    if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
        raise DifflabError(f"{path}: 'labels' is {labels.dtype} {labels.shape}; expected int of shape ({images.shape[0]},)")
    if not np.isfinite(images).all() or images.min() < -1e-3 or images.max() > 1 + 1e-3:
        raise DifflabError(f"{path}: 'images' must be finite and in [0, 1] (got min {np.nanmin(images):.3g}, max {np.nanmax(images):.3g})")
    if (labels > 9).any() or (labels < -1).any() or ((labels >= 0).any() and (labels < 0).any()):
        raise DifflabError(f"{path}: 'labels' must be all in 0..9 (class-conditioned) or all -1 (unconditional)")
    return torch.from_numpy(images.astype(np.float32)).clamp(0, 1)[:, None], labels.astype(np.int64)


def warn_if_fid_biased(n: int, feature_dim: int) -> None:
    """One warning line on stderr (the job's log) when FID on n images with `feature_dim` features is bias-dominated."""
    from difflab.metrics.fid import fid_bias_dominates

    if fid_bias_dominates(n, feature_dim):
        print(f"difflab metrics: warning: FID on n = {n} samples with {feature_dim} features is dominated by its bias; compare KID",
              file=sys.stderr)


def fid_rows(real: torch.Tensor, fake: torch.Tensor, classifier, width: int, settings: dict, device: torch.device, base: dict) -> list[dict]:
    """fid, kid and kid_std rows for one pair of image sets: on the MNIST-classifier features, and on Inception's
    when its weights are on disk. Settings (the part_b.fid config section): inception (auto | off),
    kid_subset_size and kid_subsets (defaults KID_SUBSET_SIZE, KID_SUBSETS)."""
    from difflab.metrics.fid import (
        INCEPTION_EXTRACTOR,
        INCEPTION_FEATURES,
        KID_SUBSET_SIZE,
        KID_SUBSETS,
        ClassifierFeatures,
        check_kid_settings,
        classifier_extractor_name,
        fid_score,
        inception_available,
        inception_fid,
        inception_kid,
        kid_score,
    )

    mode = settings.get("inception", "auto")
    if mode not in INCEPTION_MODES:
        raise DifflabError(f"config key 'part_b.fid.inception' is {mode!r}; expected auto or off")
    kid_settings = settings.get("kid_subset_size", KID_SUBSET_SIZE), settings.get("kid_subsets", KID_SUBSETS)
    check_kid_settings(*kid_settings)
    n = fake.shape[0]

    def rows_for(extractor: str, feature_dim: int, fid: float, kid: tuple[float, float]) -> list[dict]:
        warn_if_fid_biased(min(n, real.shape[0]), feature_dim)
        common = {**base, "n": n, "extractor": extractor}
        return [{**common, "metric": "fid", "value": fid}, {**common, "metric": "kid", "value": kid[0]},
                {**common, "metric": "kid_std", "value": kid[1]}]

    features = ClassifierFeatures(classifier)
    rows = rows_for(classifier_extractor_name(width), features.num_features, fid_score(real, fake, features),
                    kid_score(real, fake, features, *kid_settings))
    if mode == "auto":
        ok, reason = inception_available()
        if ok:
            rows += rows_for(INCEPTION_EXTRACTOR, INCEPTION_FEATURES, inception_fid(real, fake, device),
                             inception_kid(real, fake, device, *kid_settings))
        else:
            print(f"difflab metrics: Inception FID and KID skipped: {reason}", file=sys.stderr)
    return rows


def train_classifier_cmd(args) -> None:
    from difflab.checkpoint import save_checkpoint
    from difflab.metrics.classifier import accuracy, train_classifier
    from difflab.metrics.tables import write_metrics

    settings = args.settings
    if "seed" not in settings:
        raise DifflabError("--settings lacks 'seed'; expected epochs, batch_size, lr, width, seed, device, train_subset")
    device = resolve_device(settings.get("device", "auto"))
    train_x, train_y = load_mnist(args.data, "train", device, settings.get("train_subset", 0))
    test_x, test_y = load_mnist(args.data, "test", device)
    model, history = train_classifier(train_x, train_y, settings, device, settings["seed"])
    acc = accuracy(model, test_x, test_y)
    save_checkpoint(args.out, {
        "architecture": "classifier",
        "width": settings["width"],
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "test_accuracy": acc,
        "epoch": settings["epochs"],
        "history": history,
        "train_images": train_x.shape[0],
        "settings": settings,
        "seed": settings["seed"],
    })
    base = {"experiment": "classifier", "model": "cnn", "epoch": settings["epochs"], "parameter": f"width={settings['width']}"}
    write_metrics(args.metrics_out, [
        {**base, "metric": "test_accuracy", "value": acc, "n": test_x.shape[0]},
        {**base, "metric": "train_loss", "value": history[-1]["loss"], "n": train_x.shape[0]},
    ])
    speed = sum(h["images_per_second"] for h in history) / len(history)
    print(f"classifier (width {settings['width']}, {settings['epochs']} epochs, {train_x.shape[0]} images): "
          f"test accuracy {acc:.4f}, {speed:.0f} images/s on {device} -> {args.out}")


def fid_cmd(args) -> None:
    from difflab.metrics.classifier import accuracy
    from difflab.metrics.fid import classifier_extractor_name
    from difflab.metrics.tables import write_metrics

    device = resolve_device(args.settings.get("device", "auto"))
    fake, labels = load_samples(args.samples)
    n = fake.shape[0]
    real_all, _ = load_mnist(args.data, "test", device)
    if n > real_all.shape[0]:
        raise DifflabError(f"{args.samples}: holds {n} images but MNIST test has only {real_all.shape[0]}; FID compares equal n")
    model, ckpt = load_classifier(args.classifier, device)
    base = {"experiment": args.experiment, "model": args.model, "epoch": args.epoch, "parameter": args.parameter}
    rows = fid_rows(real_all[:n], fake, model, ckpt["width"], args.settings, device, base)
    if labels[0] >= 0:
        acc = accuracy(model, fake, torch.from_numpy(labels))
        rows.append({**base, "metric": "class_accuracy", "value": acc, "n": n, "extractor": classifier_extractor_name(ckpt["width"])})
    write_metrics(args.out, rows)
    print("; ".join(f"{r['metric']} {r['value']:.4g} ({r['extractor']})" for r in rows) + f", n={n} -> {args.out}")


def real_floor_cmd(args) -> None:
    from difflab.metrics.tables import write_metrics

    device = resolve_device(args.settings.get("device", "auto"))
    train_x, _ = load_mnist(args.data, "train", device)
    test_x, _ = load_mnist(args.data, "test", device)
    if not 2 <= args.n <= min(train_x.shape[0], test_x.shape[0]):
        raise DifflabError(f"--n is {args.n}; expected 2..{min(train_x.shape[0], test_x.shape[0])} (config key part_b.fid.real_floor_num_images)")
    model, ckpt = load_classifier(args.classifier, device)
    base = {"experiment": "fid_floor", "model": "mnist-train", "epoch": None, "parameter": ""}
    rows = fid_rows(test_x[:args.n], train_x[:args.n], model, ckpt["width"], args.settings, device, base)
    write_metrics(args.out, rows)
    print("; ".join(f"floor {r['metric']} {r['value']:.4g} ({r['extractor']})" for r in rows) + f", n={args.n} -> {args.out}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab metrics", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-classifier", help="train the MNIST classifier")
    p.add_argument("--data", required=True, help="results/data/mnist.npz")
    p.add_argument("--settings", required=True, type=json_object, help="JSON: epochs, batch_size, lr, width, seed, device, train_subset")
    p.add_argument("--out", required=True, help="classifier checkpoint to write")
    p.add_argument("--metrics-out", required=True, help="tidy CSV with the test accuracy")
    p.set_defaults(run=train_classifier_cmd)

    p = sub.add_parser("fid", help="FID, KID (and class accuracy) of a samples file")
    p.add_argument("--data", required=True, help="results/data/mnist.npz")
    p.add_argument("--classifier", required=True, help="classifier checkpoint")
    p.add_argument("--samples", required=True, help="npz with images (N x 28 x 28 in [0, 1]) and labels (class or -1)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--epoch", type=optional_int, default=None, help="training epoch of the model ('' or omitted: none)")
    p.add_argument("--parameter", default="", help='the swept setting, e.g. "guidance=5"')
    p.add_argument("--out", required=True, help="tidy CSV to write")
    p.add_argument("--settings", type=json_object, default={}, help="JSON: device, inception (auto | off), kid_subset_size, kid_subsets")
    p.set_defaults(run=fid_cmd)

    p = sub.add_parser("real-floor", help="FID and KID of N train images against N test images")
    p.add_argument("--data", required=True, help="results/data/mnist.npz")
    p.add_argument("--classifier", required=True, help="classifier checkpoint")
    p.add_argument("--n", required=True, type=int, help="images per side")
    p.add_argument("--out", required=True, help="tidy CSV to write")
    p.add_argument("--settings", type=json_object, default={}, help="JSON: device, inception (auto | off), kid_subset_size, kid_subsets")
    p.set_defaults(run=real_floor_cmd)

    args = parser.parse_args(argv)
    configure_threads()
    enable_determinism()
    args.run(args)
