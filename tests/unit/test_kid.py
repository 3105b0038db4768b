"""KID beside FID: torchmetrics' KID against the unbiased MMD^2 written out here, KID vs FID at small n, the
FID bias warning, and the kid / kid_std rows. Synthetic digits only; no MNIST file is needed."""

import numpy as np
import pytest
import torch
from test_metrics import synthetic_digits
from torch import nn

from difflab import DifflabError
from difflab.metrics.classifier import init_classifier, train_classifier
from difflab.metrics.scores import fid_rows
from difflab.metrics.fid import (
    INCEPTION_EXTRACTOR,
    ClassifierFeatures,
    extractor_feature_dim,
    fid_bias_dominates,
    fid_score,
    kid_score,
    kid_subset_size,
)


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """MMD^2_u of features x (m, d) and y (m, d) with k(a, b) = (a.b / d + 1)^3, pair by pair from the formula."""
    m, d = x.shape

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    return within - 2 * across


class LinearFeatures(nn.Module):
    """A fixed random linear map of the flattened image to 5 features (float32, like the classifier's)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(28 * 28, 5)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            self.linear.weight.copy_(torch.randn(5, 28 * 28, generator=g) / 28)
            self.linear.bias.copy_(torch.randn(5, generator=g))

    @torch.no_grad()
    def forward(self, x):
        return self.linear(x.flatten(1))


def random_images(n: int, seed: int, brightness: float = 1.0) -> torch.Tensor:
    return brightness * torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def features():
    """Penultimate features (32) of a width-8 classifier trained on 600 synthetic digits."""
    x, y = synthetic_digits(600, seed=1)
    model, _ = train_classifier(x, y, epochs=3, batch_size=50, lr=1e-2, width=8, seed=0, device="cpu", show_progress=False)
    return ClassifierFeatures(model)


def test_kid_equals_unbiased_mmd2_on_the_same_subsets():
    module = LinearFeatures()
    real, fake = random_images(12, seed=1), random_images(10, seed=2, brightness=0.5)
    fx, fy = module(real).double(), module(fake).double()
    subsets = 4
    m = kid_subset_size(10, 1000)
    assert m == 5
    # torchmetrics draws, per subset, a permutation of the real then of the fake features from the CPU generator
    torch.manual_seed(7)
    values = []
    for _ in range(subsets):
        x = fx[torch.randperm(12)[:m]]
        y = fy[torch.randperm(10)[:m]]
        values.append(unbiased_mmd2(x, y))
    mean, std = kid_score(real, fake, module, subset_size=1000, subsets=subsets, seed=7, batch_size=5)
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values), rel=1e-9)
    assert mean > 3 * std  # the two sets differ, and KID sees it


def test_kid_mean_over_subsets_estimates_the_full_set_mmd2():
    # each ordered pair is equally likely in a random subset, so E[subset MMD^2_u] = full-set MMD^2_u
    module = LinearFeatures()
    real, fake = random_images(24, seed=3), random_images(24, seed=4, brightness=0.9)
    full = unbiased_mmd2(module(real).double(), module(fake).double())
    subsets = 400
    mean, std = kid_score(real, fake, module, subset_size=8, subsets=subsets)
    assert abs(mean - full) < 4 * std / subsets ** 0.5
    assert std > 0


def test_kid_is_repeatable_and_leaves_the_global_generator_alone():
    module = LinearFeatures()
    real, fake = random_images(20, seed=5), random_images(20, seed=6)
    torch.manual_seed(123)
    first = kid_score(real, fake, module, subsets=5, seed=1)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert kid_score(real, fake, module, subsets=5, seed=1) == first
    assert torch.equal(torch.rand(3), after)
    assert kid_score(real, fake, module, subsets=5, seed=2) != first


def test_kid_is_unbiased_at_small_n_where_fid_is_not(features):
    # 50 disjoint pairs of 16 real-vs-real digits (32 features, so n <= d) drawn from one pool
    pool, _ = synthetic_digits(1600, seed=10)
    pool = pool[torch.randperm(1600, generator=torch.Generator().manual_seed(4))]
    a, b = pool[:800], pool[800:]
    noisy = (b + 0.1 * torch.randn(b.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    n, pairs = 16, 50
    cut = [slice(i * n, (i + 1) * n) for i in range(pairs)]
    fid_small = np.mean([fid_score(a[s], b[s], features) for s in cut])
    kid_small = np.array([kid_score(a[s], b[s], features, subsets=10)[0] for s in cut])
    kid_noisy_small = np.mean([kid_score(a[s], noisy[s], features, subsets=10)[0] for s in cut])
    fid_large, kid_noisy_large = fid_score(a, b, features), kid_score(a, noisy, features)[0]
    assert fid_small > 20 * fid_large  # FID real-vs-real: bias-dominated at n = 16
    standard_error = kid_small.std() / pairs ** 0.5
    assert abs(kid_small.mean()) < 3 * standard_error  # KID real-vs-real: 0 within its noise
    assert abs(kid_small.mean()) < 0.01 * kid_noisy_large
    assert kid_noisy_small == pytest.approx(kid_noisy_large, rel=0.2)  # same expectation at n = 16 and 800


def test_kid_subset_size_and_settings():
    assert [kid_subset_size(n, 1000) for n in (2, 3, 4, 64, 1999, 2000, 10000)] == [2, 2, 2, 32, 999, 1000, 1000]
    assert kid_subset_size(64, 10) == 10
    with pytest.raises(DifflabError, match="at least 2 images"):
        kid_subset_size(1)
    real = random_images(8, seed=0)
    with pytest.raises(DifflabError, match="'part_b.fid.kid_subsets' is 0; expected an integer >= 1"):
        kid_score(real, real, LinearFeatures(), subsets=0)
    with pytest.raises(DifflabError, match="generated images"):
        kid_score(real, real[:, 0], LinearFeatures())


def test_feature_dims_and_bias_condition():
    assert extractor_feature_dim("mnist-classifier(width=32)") == 128
    assert extractor_feature_dim(INCEPTION_EXTRACTOR) == 2048
    with pytest.raises(DifflabError, match="'resnet'"):
        extractor_feature_dim("resnet")
    assert fid_bias_dominates(64, 128) and fid_bias_dominates(128, 128)
    assert not fid_bias_dominates(129, 128) and not fid_bias_dominates(5000, 128)


def test_fid_rows_add_kid_and_warn_at_small_n(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no Inception weights
    model = init_classifier(4, seed=0).eval()  # 16 features
    real, _ = synthetic_digits(40, seed=0)
    fake, _ = synthetic_digits(40, seed=1)
    base = {"experiment": "fid_floor", "model": "mnist-train", "epoch": None, "parameter": ""}
    settings = {"inception": "off", "kid_subset_size": 10, "kid_subsets": 7}
    rows = fid_rows(real, fake, model, 4, base, torch.device("cpu"), **settings)
    assert [r["metric"] for r in rows] == ["fid", "kid", "kid_std"]
    for row in rows:
        assert {k: row[k] for k in base} == base and row["n"] == 40 and row["extractor"] == "mnist-classifier(width=4)"
    mean, std = kid_score(real, fake, ClassifierFeatures(model), subset_size=10, subsets=7)
    assert rows[1]["value"] == mean and rows[2]["value"] == std > 0
    assert "warning" not in capsys.readouterr().err  # n = 40 > 16 features

    fid_rows(real[:16], fake[:16], model, 4, base, torch.device("cpu"), **settings)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["difflab metrics: warning: FID on n = 16 samples with 16 features is dominated by its bias; compare KID"]
