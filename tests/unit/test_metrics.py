"""Metrics: the classifier, FID (torchmetrics vs an independent Fréchet distance), tidy tables, CLI.

PSNR and SSIM are tested in test_image_quality.py.

Synthetic digits only (Gaussian strokes drawn here); no MNIST file is needed.
"""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from difflab import DifflabError
from difflab.checkpoint import load_model, save_checkpoint
from difflab.cli import main
from difflab.metrics.classifier import accuracy, init_classifier, predict, train_classifier
from difflab.metrics.scores import fid_rows, load_samples
from difflab.metrics.fid import (
    ClassifierFeatures,
    classifier_extractor_name,
    feature_statistics,
    fid_score,
    frechet_distance,
    inception_available,
)
from difflab.metrics.tables import COLUMNS, markdown_table, read_metrics, write_metrics


def synthetic_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images N x 1 x 28 x 28 in [0, 1]: class k is a bright stroke at angle k * 18 degrees, jittered."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    angle = labels.float() * math.pi / 10 + 0.04 * torch.randn(n, generator=g)
    cx, cy = 14 + 2 * torch.randn(n, generator=g), 14 + 2 * torch.randn(n, generator=g)
    # distance of each pixel from the line through (cx, cy) at `angle`
    dist = ((xs - cx[:, None, None]) * torch.sin(angle)[:, None, None] - (ys - cy[:, None, None]) * torch.cos(angle)[:, None, None]).abs()
    along = ((xs - cx[:, None, None]) * torch.cos(angle)[:, None, None] + (ys - cy[:, None, None]) * torch.sin(angle)[:, None, None]).abs()
    images = torch.exp(-dist.square() / 2) * (along < 9).float()
    return images[:, None].clamp(0, 1), labels


@pytest.fixture(scope="module")
def trained():
    """A width-8 classifier trained for 3 epochs on 600 synthetic digits (about a second): (model, history)."""
    x, y = synthetic_digits(600, seed=1)
    return train_classifier(x, y, epochs=3, batch_size=50, lr=1e-2, width=8, seed=0, device="cpu", show_progress=False)


@pytest.fixture(scope="module")
def features(trained):
    return ClassifierFeatures(trained[0])


# ---------------------------------------------------------------- classifier

def test_classifier_shapes_and_checkpoint_round_trip(tmp_path):
    model = init_classifier(8, seed=1).eval()
    x, _ = synthetic_digits(6)
    assert model(x).shape == (6, 10)
    assert model.features(x).shape == (6, model.num_features) and model.num_features == 32
    save_checkpoint(tmp_path / "c.pt", {"architecture": "classifier", "width": 8, "model": model.state_dict()})
    loaded, ckpt = load_model(tmp_path / "c.pt")
    assert ckpt["width"] == 8
    torch.testing.assert_close(loaded(x), model(x))


def test_one_step_lowers_the_loss_and_is_repeatable():
    x, y = synthetic_digits(64)
    settings = {"epochs": 1, "batch_size": 64, "lr": 3e-3, "width": 4, "seed": 7}  # one full-batch Adam step

    def train_mode_loss(model):  # the training objective: batch statistics, and the same dropout mask both times
        torch.manual_seed(0)
        return F.cross_entropy(model.train()(x), y).item()

    before = train_mode_loss(init_classifier(4, seed=7))
    model, history = train_classifier(x, y, **settings, device="cpu", show_progress=False)
    again, _ = train_classifier(x, y, **settings, device="cpu", show_progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert len(history) == 1 and history[0]["images_per_second"] > 0
    assert train_mode_loss(model) < before


def test_classifier_learns_synthetic_digits(trained):
    model, history = trained
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[2]["loss"] < history[1]["loss"] < history[0]["loss"]
    x_test, y_test = synthetic_digits(200, seed=2)
    assert accuracy(model, x_test, y_test) > 0.8


def test_accuracy_counts_matches():
    model = init_classifier(4, seed=3)
    x, _ = synthetic_digits(50)
    pred = predict(model, x, batch_size=16)
    assert accuracy(model, x, pred) == 1.0
    assert accuracy(model, x, (pred + 1) % 10) == 0.0
    half = torch.where(torch.arange(50) < 25, pred, (pred + 1) % 10)
    assert accuracy(model, x, half) == pytest.approx(0.5)


def test_diverging_training_names_epoch_and_step():
    x, y = synthetic_digits(8)
    x[5] = float("nan")
    with pytest.raises(DifflabError, match=r"epoch 1, step 2/2"):
        train_classifier(x, y, epochs=1, batch_size=4, lr=1e-3, width=4, seed=0, device="cpu", show_progress=False)


# ---------------------------------------------------------------- Fréchet distance

def test_frechet_distance_closed_forms():
    # 1-D: d^2 = (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == pytest.approx(9 + 1)
    # diagonal covariances commute: d^2 = ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # a Gaussian against itself
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 5))
    s = m @ m.T + np.eye(5)
    assert frechet_distance(mu1[:1].repeat(5), s, mu1[:1].repeat(5), s) == pytest.approx(0, abs=1e-8)


def test_torchmetrics_fid_equals_independent_frechet_distance(features):
    real, _ = synthetic_digits(300, seed=0)
    fake, _ = synthetic_digits(250, seed=5)
    fake = (fake + 0.2 * torch.rand(fake.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    expected = frechet_distance(*feature_statistics(features(real).numpy()), *feature_statistics(features(fake).numpy()))
    assert expected > 1.0
    assert fid_score(real, fake, features, batch_size=64) == pytest.approx(expected, rel=1e-4)


def test_fid_is_zero_on_itself_and_grows_with_noise(features):
    real, _ = synthetic_digits(400, seed=0)
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(2))
    scores = [fid_score(real, (real + sigma * noise).clamp(0, 1), features) for sigma in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert abs(scores[0]) < 1e-6 * max(scores)
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


def test_fid_rejects_wrong_shapes(features):
    real, _ = synthetic_digits(10)
    with pytest.raises(DifflabError, match="generated images"):
        fid_score(real, real[:, 0], features)


def test_inception_is_skipped_without_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    ok, reason = inception_available()
    assert not ok
    assert str(tmp_path / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in reason


def test_fid_rows_carry_n_and_extractor(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = init_classifier(4, seed=0).eval()
    real, _ = synthetic_digits(40, seed=0)
    fake, _ = synthetic_digits(40, seed=1)
    base = {"experiment": "fid", "model": "class", "epoch": 5, "parameter": "guidance=5"}
    rows = fid_rows(real, fake, model, 4, base, torch.device("cpu"), inception="auto")
    assert [r["metric"] for r in rows] == ["fid", "kid", "kid_std"]  # KID: tests/unit/test_kid.py
    assert rows[0]["n"] == 40 and rows[0]["extractor"] == classifier_extractor_name(4) == "mnist-classifier(width=4)"
    assert rows[0]["value"] == pytest.approx(fid_score(real, fake, ClassifierFeatures(model)))
    assert "Inception FID and KID skipped" in capsys.readouterr().err


# ---------------------------------------------------------------- tidy tables

def test_metrics_csv_round_trip(tmp_path):
    rows = [
        {"experiment": "cfg_sweep", "model": "class", "epoch": 20, "parameter": "guidance=5", "metric": "fid",
         "value": 12.345678901234, "n": 10000, "extractor": "mnist-classifier(width=32)"},
        {"experiment": "classifier", "model": "cnn", "metric": "test_accuracy", "value": 0.991},
    ]
    path = tmp_path / "metrics" / "m.csv"
    write_metrics(path, rows)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    df = read_metrics(path, path)
    assert list(df.columns) == list(COLUMNS) and len(df) == 4
    assert df.loc[0, "value"] == 12.345678901234 and df.loc[0, "epoch"] == 20 and df.loc[0, "n"] == 10000
    assert df["epoch"].isna().tolist() == [False, True, False, True]
    assert df.loc[1, "parameter"] == "" and df.loc[1, "extractor"] == ""


def test_metrics_csv_validation(tmp_path):
    path = tmp_path / "m.csv"
    with pytest.raises(DifflabError, match="unknown column.*sigma"):
        write_metrics(path, [{"experiment": "a", "model": "b", "metric": "c", "value": 1, "sigma": 2}])
    with pytest.raises(DifflabError, match="row 2: missing value"):
        write_metrics(path, [{"experiment": "a", "model": "b", "metric": "c", "value": 1}, {"experiment": "a", "model": "b", "metric": "c"}])
    with pytest.raises(DifflabError, match="epoch is 1.5"):
        write_metrics(path, [{"experiment": "a", "model": "b", "metric": "c", "value": 1, "epoch": 1.5}])
    assert not path.exists()
    path.write_text("experiment,model,metric,value\na,b,c,1\n")
    with pytest.raises(DifflabError, match=f"{path}: columns are"):
        read_metrics(path)


def test_markdown_table_has_pipe_table_and_caption(tmp_path):
    write_metrics(tmp_path / "m.csv", [{"experiment": "fid_floor", "model": "mnist-train", "metric": "fid", "value": 1.23456, "n": 1000}])
    df = read_metrics(tmp_path / "m.csv")[["model", "epoch", "value", "n"]]
    text = markdown_table(df, "FID floor (train vs test)", "fid-floor")
    lines = text.strip().splitlines()
    assert lines[0].startswith("| model") and set(lines[1]) <= set("|:- ")
    assert "| mnist-train" in lines[2] and "1.235" in lines[2] and "<NA>" not in lines[2]
    assert lines[-1] == ": FID floor (train vs test) {#tbl-fid-floor}" and lines[-2] == ""
    with pytest.raises(DifflabError, match="no rows"):
        markdown_table(df.iloc[:0], "x", "y")


# ---------------------------------------------------------------- CLI

def test_train_classifier_cli_reports_missing_data(tmp_path, capsys):
    missing = tmp_path / "mnist.npz"
    code = main(["metrics", "train-classifier", "--data", str(missing), "--out", str(tmp_path / "c.pt"),
                 "--metrics-out", str(tmp_path / "m.csv"),
                 "--settings", '{"epochs": 1, "batch_size": 8, "lr": 0.001, "width": 4, "seed": 0, "device": "cpu", "train_subset": 0}'])
    err = capsys.readouterr().err
    assert code == 2 and f"{missing}: MNIST cache not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "m.csv").exists()


def test_samples_file_validation(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, images=np.random.default_rng(0).random((4, 28, 28), dtype=np.float32), labels=np.array([3, 1, 4, 1]))
    images, labels = load_samples(path)
    assert images.shape == (4, 1, 28, 28) and labels.tolist() == [3, 1, 4, 1]
    np.savez(path, images=np.zeros((4, 28, 28), np.float32), labels=np.array([3, -1, 4, 1]))
    with pytest.raises(DifflabError, match="all -1"):
        load_samples(path)
    np.savez(path, images=np.zeros((4, 1, 28, 28), np.float32), labels=np.full(4, -1))
    with pytest.raises(DifflabError, match="N x 28 x 28"):
        load_samples(path)
    np.savez(path, pictures=np.zeros((4, 28, 28), np.float32))
    with pytest.raises(DifflabError, match="expected arrays 'images' and 'labels'"):
        load_samples(path)
