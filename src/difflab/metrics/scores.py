"""Scores of generated images against real ones: FID and KID on the MNIST classifier's features (and on
Inception's when its weights are on disk), and the samples-file reader the FID jobs use.

A samples file (difflab.commands.samples) is an npz with `images` float (N, 28, 28) in [0, 1] and `labels` int
(N,) (digits, or all -1 for the time-conditioned model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from difflab import DifflabError


def load_classifier(path: str, device: torch.device):
    """(model in eval mode, checkpoint) of the MNIST classifier at `path`; DifflabError if it holds another model."""
    from difflab.checkpoint import load_model

    model, ckpt = load_model(path, device)
    arch = ckpt["architecture"] if isinstance(ckpt, dict) else ckpt.architecture  # UNets load as Checkpoint
    if arch != "classifier":
        raise DifflabError(f"{path}: holds a {arch!r} model; expected the MNIST classifier")
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


def fid_rows(real: torch.Tensor, fake: torch.Tensor, classifier, width: int, base: dict, device: torch.device,
             inception: str = "auto", kid_subset_size: int = 1000, kid_subsets: int = 100) -> list[dict]:
    """fid, kid and kid_std rows (tidy, difflab.metrics.tables) for one pair of image sets, real and fake
    (N, 1, 28, 28) in [0, 1]: on the MNIST classifier's features, and on Inception's when `inception` is 'auto'
    and its weights are on disk. `base` holds the experiment, model, epoch and parameter columns; the other
    arguments are the config keys part_b.fid.inception, kid_subset_size and kid_subsets."""
    from difflab.metrics.fid import (
        INCEPTION_EXTRACTOR,
        INCEPTION_FEATURES,
        ClassifierFeatures,
        classifier_extractor_name,
        fid_score,
        inception_available,
        inception_fid,
        inception_kid,
        kid_score,
    )

    n = fake.shape[0]

    def rows_for(extractor: str, feature_dim: int, fid: float, kid: tuple[float, float]) -> list[dict]:
        warn_if_fid_biased(min(n, real.shape[0]), feature_dim)
        common = {**base, "n": n, "extractor": extractor}
        return [{**common, "metric": "fid", "value": fid}, {**common, "metric": "kid", "value": kid[0]},
                {**common, "metric": "kid_std", "value": kid[1]}]

    features = ClassifierFeatures(classifier)
    rows = rows_for(classifier_extractor_name(width), features.num_features, fid_score(real, fake, features),
                    kid_score(real, fake, features, kid_subset_size, kid_subsets))
    if inception == "auto":
        ok, reason = inception_available()
        if ok:
            rows += rows_for(INCEPTION_EXTRACTOR, INCEPTION_FEATURES, inception_fid(real, fake, device),
                             inception_kid(real, fake, device, kid_subset_size, kid_subsets))
        else:
            print(f"difflab metrics: Inception FID and KID skipped: {reason}", file=sys.stderr)
    return rows
