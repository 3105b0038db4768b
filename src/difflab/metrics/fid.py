"""Distances between sets of images: torchmetrics' FID and KID on MNIST-classifier features, optional
Inception FID and KID, and an independent numpy/scipy Fréchet distance that checks torchmetrics.

FID fits a Gaussian N(mu, S) to the features of each set and measures
    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).
It depends on the feature extractor and falls as n grows, so every value is reported with its n and
extractor name, and values are compared only at equal n with the same extractor. With n <= d features
the covariance estimate is singular (rank <= n - 1) and FID is dominated by its bias.

KID (Bińkowski et al. 2018, "Demystifying MMD GANs") is the unbiased estimate of the squared maximum mean
discrepancy MMD^2 with the kernel k(x, y) = (x^T y / d + 1)^3 on the same features. Its expectation does not
depend on n, so KID values at different n can be compared (their spread grows as n shrinks).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from difflab import DifflabError
from difflab.metrics.classifier import check_images
from difflab.metrics.extractors import (  # noqa: F401  (re-exported: the names FID rows carry)
    INCEPTION_EXTRACTOR,
    INCEPTION_FEATURES,
    classifier_extractor_name,
    extractor_feature_dim,
    fid_bias_dominates,
)

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
KID_SUBSET_SIZE = 1000  # images per KID subset: torchmetrics' and torch-fidelity's default
KID_SUBSETS = 100  # KID subsets: torchmetrics' and torch-fidelity's default


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


def kid_subset_size(n: int, configured: int = KID_SUBSET_SIZE) -> int:
    """Images per KID subset for n images per set: m = max(2, min(configured, n // 2)).

    Half the set at most, so that random subsets differ and their spread (kid_std) is not 0 by construction;
    the mean over subsets still estimates the full-set MMD^2 without bias.
    """
    if n < 2:
        raise DifflabError(f"KID needs at least 2 images per set (got {n})")
    return max(2, min(configured, n // 2))


def check_kid_settings(subset_size: int, subsets: int) -> None:
    """Raise DifflabError unless subset_size >= 2 and subsets >= 1 are integers (config keys part_b.fid.kid_*)."""
    for key, value, low in (("kid_subset_size", subset_size, 2), ("kid_subsets", subsets, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DifflabError(f"config key 'part_b.fid.{key}' is {value!r}; expected an integer >= {low}")


class Float64Features(nn.Module):
    """Wraps a feature module so that its features (N, d) are float64 (KID's kernel sums then lose no precision)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x).double()


def kid_score(real: Tensor, fake: Tensor, feature_module: nn.Module, subset_size: int = KID_SUBSET_SIZE,
              subsets: int = KID_SUBSETS, seed: int = 0, batch_size: int = 1000) -> tuple[float, float]:
    """KID (mean, std) between real and fake images (float N x 1 x 28 x 28 in [0, 1]) on `feature_module`'s
    features (N, d), with torchmetrics (which hands a custom module the images unchanged: no uint8 conversion).
    For each of `subsets` random subsets of m = kid_subset_size(min(n_real, n_fake), subset_size) features
    x (real) and y (fake):

        MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2,
        k(x, y) = (x^T y / d + 1)^3;

    KID is the mean over subsets, kid_std their standard deviation (population form, as torchmetrics); the
    kernel runs in float64. KID is 0 in expectation for equal distributions (so small negative values occur)
    and scales like |f|^6 for features much larger than 1, so values compare only with the same extractor.
    The subsets are drawn from `seed`, so the result is repeatable.
    Source: Bińkowski et al. 2018; torchmetrics KernelInceptionDistance.
    Raises DifflabError for wrong image shapes, fewer than 2 images per set, or bad subset settings.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    check_images(real, "real images")
    check_images(fake, "generated images")
    check_kid_settings(subset_size, subsets)
    n = min(real.shape[0], fake.shape[0])
    m = kid_subset_size(n, subset_size)
    device = next(feature_module.parameters()).device
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        metric = KernelInceptionDistance(feature=Float64Features(feature_module), subsets=subsets, subset_size=m).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch_size):
            metric.update(images[i:i + batch_size].to(device), real=is_real)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets with torch.randperm on the CPU generator
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


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
    metric = FrechetInceptionDistance(feature=INCEPTION_FEATURES, normalize=True, feature_extractor_weights_path=str(inception_weights_path())).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch_size):
            metric.update(images[i:i + batch_size].to(device).clamp(0, 1).repeat(1, 3, 1, 1), real=is_real)
    return float(metric.compute())


class InceptionDigitFeatures(nn.Module):
    """Inception-v3 pool3 features (N, 2048) of digits (N, 1, 28, 28) in [0, 1]: each image becomes uint8
    (x * 255 truncated, as torchmetrics' normalize=True) with 3 equal channels; the network resizes to 299."""

    def __init__(self):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(INCEPTION_FEATURES)],
                                      feature_extractor_weights_path=str(inception_weights_path()))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.net((x.clamp(0, 1) * 255).byte().repeat(1, 3, 1, 1))


def inception_kid(real: Tensor, fake: Tensor, device: torch.device | str = "cpu", subset_size: int = KID_SUBSET_SIZE,
                  subsets: int = KID_SUBSETS, batch_size: int = 200) -> tuple[float, float]:
    """KID (mean, std) on Inception-v3 pool3 features of digits (float N x 1 x 28 x 28 in [0, 1]); see kid_score."""
    ok, reason = inception_available()
    if not ok:
        raise DifflabError(reason)
    return kid_score(real, fake, InceptionDigitFeatures().to(device), subset_size, subsets, batch_size=batch_size)
