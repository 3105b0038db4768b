"""Fréchet distances between sets of images: torchmetrics' FID on MNIST-classifier features, an optional
Inception FID, and an independent numpy/scipy Fréchet distance that checks torchmetrics.

FID fits a Gaussian N(mu, S) to the features of each set and measures
    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).
It depends on the feature extractor and falls as n grows, so every value is reported with its n and
extractor name, and values are compared only at equal n with the same extractor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from difflab import DifflabError
from difflab.metrics.classifier import check_images

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_EXTRACTOR = "inception-v3-compat(pool3, 2048)"


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean mu = (1/n) sum_i f_i and unbiased covariance S = (1/(n-1)) sum_i (f_i - mu)(f_i - mu)^T of (n, d) features."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2):

        d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

    with the matrix square root from scipy.linalg.sqrtm (its tiny imaginary part, from round-off, is dropped).
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    covmean = scipy.linalg.sqrtm(np.asarray(sigma1, np.float64) @ np.asarray(sigma2, np.float64)).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


class ClassifierFeatures(nn.Module):
    """FID feature extractor: the classifier's penultimate features (N, F), always in eval mode, no grad."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = int(classifier.num_features)

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


def classifier_extractor_name(width: int) -> str:
    return f"mnist-classifier(width={width})"


def fid_score(real: Tensor, fake: Tensor, feature_module: nn.Module, batch_size: int = 1000) -> float:
    """FID between real and fake images (float, N x 1 x 28 x 28 in [0, 1]) on `feature_module`'s features.

    Batches are moved to the module's device; statistics accumulate in float64 inside torchmetrics.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    check_images(real, "real images")
    check_images(fake, "generated images")
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise DifflabError(f"FID needs at least 2 images per set (got {real.shape[0]} real, {fake.shape[0]} generated)")
    device = next(feature_module.parameters()).device
    metric = FrechetInceptionDistance(feature=feature_module).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch_size):
            metric.update(images[i:i + batch_size].to(device), real=is_real)
    return float(metric.compute())


def inception_weights_path() -> Path:
    """Where torch-fidelity looks for its Inception weights: torch.hub.get_dir()/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def inception_available() -> tuple[bool, str]:
    """(True, '') when torch-fidelity imports and its Inception weights file is already on disk.

    Nothing is ever downloaded: otherwise the reason says what is missing and where to place the file.
    """
    path = inception_weights_path()
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return False, f"torch-fidelity is not installed; pip install torch-fidelity and place {INCEPTION_WEIGHTS} at {path} to add Inception FID"
    if not path.is_file():
        return False, f"Inception weights not found; place {INCEPTION_WEIGHTS} at {path} to add Inception FID"
    return True, ""


def inception_fid(real: Tensor, fake: Tensor, device: torch.device | str = "cpu", batch_size: int = 200) -> float:
    """FID on Inception-v3 pool3 features (2048): digits repeated to 3 channels, resized to 299 inside torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    ok, reason = inception_available()
    if not ok:
        raise DifflabError(reason)
    check_images(real, "real images")
    check_images(fake, "generated images")
    metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(inception_weights_path())).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch_size):
            metric.update(images[i:i + batch_size].to(device).clamp(0, 1).repeat(1, 3, 1, 1), real=is_real)
    return float(metric.compute())
