"""A small MNIST classifier: the feature extractor of the MNIST-FID and the judge of class-conditioned samples.

    x 1x28x28 -Conv(1->W)+BN+ReLU+MaxPool-> Wx14x14 -Conv(W->2W)+BN+ReLU+MaxPool-> 2Wx7x7
      -Flatten+Linear(2W*49 -> 4W)-> features (4W) -ReLU+Dropout+Linear(4W -> 10)-> logits

`features(x)` is the penultimate layer taken before its ReLU, so an FID on it measures how the digits
a classifier "sees" are distributed, and no feature is stuck at zero (a dead ReLU unit would make the
feature covariance singular). Batches are sliced from tensors that already sit on the device; there is
no DataLoader.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm

from difflab import DifflabError
from difflab.metrics.extractors import CLASSIFIER_FEATURES_PER_WIDTH
from difflab.train import optimizer_step, raise_if_diverged
from difflab.runtime import make_generator



def feature_dim(width: int) -> int:
    """Number of penultimate features (the FID/KID feature dimension) of a width-W classifier: 4W."""
    return CLASSIFIER_FEATURES_PER_WIDTH * width


class MnistClassifier(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width
        self.num_features = feature_dim(width)
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, self.num_features))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.25), nn.Linear(self.num_features, 10))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, 4W), before the ReLU, of images x (N, 1, 28, 28) in [0, 1]."""
        return self.fc(self.conv(2 * x - 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 10)."""
        return self.head(self.features(x))


def build_classifier(width: int) -> MnistClassifier:
    if not isinstance(width, int) or width < 1:
        raise DifflabError(f"classifier width is {width!r}; expected a positive integer")
    return MnistClassifier(width)


def init_classifier(width: int, seed: int) -> MnistClassifier:
    """A freshly initialised classifier whose weights depend only on (width, seed)."""
    torch.manual_seed(make_generator(seed, "classifier", "init").initial_seed())
    return build_classifier(width)


def check_images(images: Tensor, name: str = "images") -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28) or not images.is_floating_point():
        raise DifflabError(f"{name}: expected float images of shape N x 1 x 28 x 28, got {images.dtype} {tuple(images.shape)}")


def train_classifier(
    images: Tensor, labels: Tensor, epochs: int, batch_size: int, lr: float, width: int, seed: int,
    device: torch.device | str, show_progress: bool = True,
) -> tuple[MnistClassifier, list[dict]]:
    """Train a classifier with Adam on cross-entropy; returns (model in eval mode, per-epoch history).

    The learning rate follows a cosine from `lr` down to 0 over all K steps: lr_k = lr (1 + cos(pi k / K)) / 2.

    The weights are initialised and the data shuffled from generators derived from `seed`, so a run is
    repeatable. History rows: epoch, mean loss, seconds, images per second.
    """
    check_images(images)
    device = torch.device(device)
    images, labels = images.to(device), labels.to(device)
    model = init_classifier(width, seed).to(device)
    steps = math.ceil(images.shape[0] / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps)
    generator = make_generator(seed, "classifier", "shuffle", device=device)
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(images.shape[0], generator=generator, device=device)
        total, start = 0.0, time.perf_counter()
        bar = tqdm(range(steps), desc=f"classifier epoch {epoch}/{epochs}", unit="batch", disable=not show_progress, mininterval=2.0)
        for step in bar:
            idx = order[step * batch_size: (step + 1) * batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            value, = raise_if_diverged(optimizer_step(loss, optimizer)[None], step, "classifier training", epoch, steps,
                                       "part_b.classifier.lr")
            scheduler.step()
            total += value * idx.numel()
            seen = min((step + 1) * batch_size, images.shape[0])
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{seen / (time.perf_counter() - start):.0f}", refresh=False)
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch, "loss": total / images.shape[0], "seconds": seconds,
                        "images_per_second": images.shape[0] / seconds})
    return model.eval(), history


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Predicted classes (N,) int64, computed in eval mode on the model's device, batch by batch."""
    check_images(images)
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, images.shape[0], batch_size)])


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of images whose predicted class equals the label."""
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise DifflabError(f"accuracy needs as many labels as images (got {labels.shape[0]} labels for {images.shape[0]} images)")
    return (predict(model, images, batch_size) == labels.cpu()).float().mean().item()
