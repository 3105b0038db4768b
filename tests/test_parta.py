"""End to end: `python -m difflab parta <experiment>` on a tiny random class-conditioned checkpoint, a tiny random
classifier and a synthetic MNIST cache in the results/data/mnist.npz format, with the config's own part_a section
(shrunk where it only sets sizes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from difflab.checkpoint import save_checkpoint
from difflab.cli import main
from difflab.data import array_hashes, write_mnist
from difflab.io import write_json
from difflab.metrics.classifier import build_classifier
from difflab.metrics.tables import COLUMNS
from difflab.models import build_model
from difflab.parta import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Checkpoint, classifier, synthetic MNIST (+ its hashes), a user-image folder and small settings."""
    tmp = tmp_path_factory.mktemp("parta")
    torch.manual_seed(0)
    save_checkpoint(tmp / "epoch_2.pt", {"architecture": "class", "hidden": 8, "model": build_model("class", 8).state_dict(),
                                         "epoch": 2, "num_timesteps": 300, "beta_start": 1e-4, "beta_end": 0.02})
    save_checkpoint(tmp / "classifier.pt", {"architecture": "classifier", "width": 4, "model": build_classifier(4).state_dict()})
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (24, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 24).astype(np.uint8),
              "test_images": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 12).astype(np.uint8)}
    write_mnist(tmp / "mnist.npz", arrays)
    write_json(tmp / "hashes.json", array_hashes(arrays))
    images = tmp / "images"
    images.mkdir()
    im = Image.new("L", (60, 80), 255)
    im.paste(0, (20, 10, 30, 70))
    im.save(images / "1_stroke.png")
    (images / "broken.png").write_bytes(b"not a png")
    settings = dict(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["part_a"])
    settings.update(seed=180, device="cpu", test_images=[0, 3], sample_step_counts=[3, 5], num_samples=2, stride=50,
                    i_start=1, sdedit_i_starts=[1, 4], anagrams=[["a 6", "a 9"]], hybrids=[["a 0", "a 1"]],
                    benchmark_num_images=6, illusion_num_seeds=3, images_dir=str(images), hand_drawn_digits=[3],
                    inpaint_masks=[[0, 14, 0, 28]])
    return tmp, settings


def run_parta(lab, experiment: str, settings: dict | None = None, extra: tuple = ()) -> tuple[int, Path]:
    tmp, base = lab
    out = tmp / "out" / experiment
    argv = ["parta", experiment, "--checkpoint", str(tmp / "epoch_2.pt"), "--settings", json.dumps(settings or base),
            "--out-dir", str(out), "--snippet", str(out / "snippet.md"), "--metrics-out", str(out / "metrics.csv"),
            *extra]
    return main(argv), out


DATA_ARGS = ("--data", "{tmp}/mnist.npz", "--data-sha256", "{tmp}/hashes.json", "--classifier", "{tmp}/classifier.pt")


def data_args(lab) -> tuple:
    return tuple(a.format(tmp=lab[0]) for a in DATA_ARGS)


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_every_experiment_writes_figures_snippet_and_metrics(lab, experiment):
    rc, out = run_parta(lab, experiment, extra=data_args(lab))
    assert rc == 0
    snippet = (out / "snippet.md").read_text()
    assert not any(line.startswith("#") for line in snippet.splitlines())  # no headings: the report owns them
    figures = re.findall(r"!\[([^\]]+)\]\(([^)]+\.png)\)\{#(fig-a-[a-z0-9-]+)\}", snippet)
    assert figures, snippet
    for caption, path, _ in figures:
        assert Path(path).parent == out and Path(path).is_file()
        assert Image.open(path).format == "PNG"
        assert "seed 180" in caption
    assert len({label for *_, label in figures}) == len(figures)
    assert "$" in snippet  # the method's equation or symbols in TeX math
    metrics = pd.read_csv(out / "metrics.csv", dtype=str, keep_default_na=False)
    assert tuple(metrics.columns) == COLUMNS
    assert (metrics["experiment"] == f"part_a_{experiment}").all() and (metrics["epoch"] == "2").all()


def test_snippet_numbers_come_from_the_metrics(lab):
    rc, out = run_parta(lab, "benchmark", extra=data_args(lab))
    assert rc == 0
    snippet = (out / "snippet.md").read_text()
    metrics = pd.read_csv(out / "metrics.csv")
    assert "{#tbl-a-benchmark}" in snippet and "{#fig-a-benchmark}" in snippet
    table_rows = [line for line in snippet.splitlines() if line.startswith("| ") and "±" in line]
    assert len(table_rows) == 3 * 3  # three methods at three noise levels
    for row in metrics[metrics.metric == "iterative_psnr_mean"].itertuples():
        assert f"{row.value:.2f} ±" in snippet
    assert set(metrics.n) == {6}
    for method in ("blur", "one_step", "iterative"):
        assert {f"{method}_{m}_{s}" for m in ("mse", "psnr", "ssim") for s in ("mean", "std")} <= set(metrics.metric)


def test_runs_are_reproducible_from_the_seed(lab):
    _, base = lab
    rc1, out = run_parta(lab, "inpaint", extra=data_args(lab))
    first = (out / "metrics.csv").read_text()
    rc2, _ = run_parta(lab, "inpaint", extra=data_args(lab))
    assert rc1 == rc2 == 0 and (out / "metrics.csv").read_text() == first
    metrics = pd.read_csv(out / "metrics.csv")
    assert float(metrics[metrics.metric == "kept_region_max_abs_error"].value.iloc[0]) == 0.0
    rc3, _ = run_parta(lab, "inpaint", {**base, "seed": 181}, data_args(lab))
    assert rc3 == 0 and (out / "metrics.csv").read_text() != first


def test_user_images_are_used_and_bad_ones_reported(lab):
    rc, out = run_parta(lab, "sdedit_inputs", extra=data_args(lab))
    snippet = (out / "snippet.md").read_text()
    assert rc == 0 and "1 image(s)" in snippet and "`broken.png` (not an image" in snippet


@pytest.mark.parametrize("change,extra,message", [
    ({"sample_prompts": ["a 3", "a cat"]}, (), "part_a.sample_prompts[1]"),
    ({"i_start": 99}, (), "part_a.i_start"),
    ({"sdedit_i_starts": [1, 6]}, (), "part_a.sdedit_i_starts"),
    ({"inpaint_masks": [[10, 5, 0, 28]]}, (), "part_a.inpaint_masks[0]"),
    ({"anagram_flip": "sideways"}, (), "part_a.anagram_flip"),
    ({"hybrid_kernel_size": 32}, (), "part_a.hybrid_kernel_size"),
    ({"test_images": [0, 12]}, (), "test index 12"),
    ({"benchmark_num_images": 13}, (), "part_a.benchmark_num_images"),
    ({"seed": "x"}, (), "'seed'"),
    ({"backend": "sd"}, (), "part_a.backend"),
    ({}, ("--data", "{tmp}/mnist.npz"), "SHA-256"),
    ({}, ("--data-sha256", "{tmp}/hashes.json"), "needs --data"),
])
def test_bad_settings_and_inputs_are_one_line_errors(lab, capsys, change, extra, message):
    _, base = lab
    experiment = {"sample_prompts": "sampling", "i_start": "iterative", "sdedit_i_starts": "sdedit",
                  "inpaint_masks": "inpaint", "anagram_flip": "anagrams", "hybrid_kernel_size": "hybrids",
                  "benchmark_num_images": "benchmark"}.get(next(iter(change), ""), "forward")
    args = tuple(a.format(tmp=lab[0]) for a in extra) if extra else data_args(lab)
    rc, _ = run_parta(lab, experiment, {**base, **change}, args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and message in err[-1] and err[-1].startswith("difflab parta: error:")


def test_inpainting_takes_mask_images_and_names_a_bad_one_with_its_config_key(lab, capsys):
    tmp, base = lab
    mask = np.zeros((28, 28), np.uint8)
    mask[10:18, :] = 255
    Image.fromarray(mask).save(tmp / "band.png")
    rc, out = run_parta(lab, "inpaint", {**base, "inpaint_masks": [str(tmp / "band.png"), [0, 14, 0, 28]]}, data_args(lab))
    assert rc == 0 and "`band.png`; rows 0–14, columns 0–28" in (out / "snippet.md").read_text()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp / "all.png")
    rc, _ = run_parta(lab, "inpaint", {**base, "inpaint_masks": [[0, 14, 0, 28], str(tmp / "all.png")]}, data_args(lab))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith("difflab parta: error: config key 'part_a.inpaint_masks[1]': ")
    assert f"{tmp / 'all.png'}: the mask selects every pixel" in err


def test_illusions_need_the_classifier(lab, capsys):
    rc, _ = run_parta(lab, "illusions", extra=data_args(lab)[:4])
    assert rc == 2 and "needs --classifier" in capsys.readouterr().err
