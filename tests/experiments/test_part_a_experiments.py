"""Part A's experiments on a tiny random class-conditioned UNet, a tiny random classifier and a synthetic MNIST
cache: the Results' numbers and shapes, the files each job writes (result.npz, facts.json, metrics CSV, figures),
reproducibility from the seed, and the one-line errors that only the loaded inputs can raise."""

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

from difflab import data
from difflab.checkpoint import save_checkpoint
from helpers.factories import unet_payload
from difflab.cli import main
from difflab.data import array_hashes, write_mnist
from difflab.experiments.part_a import EXPERIMENTS
from difflab.metrics.classifier import build_classifier
from difflab.metrics.tables import COLUMNS
from difflab.models import build_model
from difflab.settings import settings_dict

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(test_images=[0, 3], sample_step_counts=[3, 5], num_samples=2, stride=50, i_start=1, sdedit_i_starts=[1, 4],
             anagrams=[["a 6", "a 9"]], hybrids=[["a 0", "a 1"]], benchmark_num_images=6, illusion_num_seeds=3, spacing_num_images=6,
             hand_drawn_digits=[3], inpaint_masks=[[0, 14, 0, 28]])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Checkpoint, classifier, synthetic MNIST, a user-image folder and the config with small Part A sizes."""
    tmp = tmp_path_factory.mktemp("part_a")
    torch.manual_seed(0)
    save_checkpoint(tmp / "epoch_2.pt", unet_payload("class", build_model("class", 8).state_dict(), epoch=2, num_timesteps=300,
                                                     beta_start=1e-4, beta_end=0.02, p_uncond=0.1))
    save_checkpoint(tmp / "classifier.pt", {"architecture": "classifier", "width": 4, "model": build_classifier(4).state_dict()})
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (24, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 24).astype(np.uint8),
              "test_images": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 12).astype(np.uint8)}
    write_mnist(tmp / "mnist.npz", arrays)
    images = tmp / "images"
    images.mkdir()
    im = Image.new("L", (60, 80), 255)
    im.paste(0, (20, 10, 30, 70))
    im.save(images / "1_stroke.png")
    (images / "broken.png").write_bytes(b"not a png")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(seed=180, device="cpu")
    config["part_a"].update(SMALL, images_dir=str(images))
    return tmp, config, array_hashes(arrays)


@pytest.fixture
def mnist_hashes(lab, monkeypatch):
    """The synthetic cache's array hashes stand in for the official ones."""
    for name, digest in lab[2].items():
        monkeypatch.setitem(data.MNIST_SHA256, name, digest)


def settings_text(lab, name: str, **change) -> str:
    _, config, _ = lab
    values = settings_dict(config, f"part_a.{name}")
    values.update(change)
    return json.dumps(values)


def run(lab, name: str, **change) -> tuple[int, Path]:
    tmp = lab[0]
    out = tmp / "experiments" / name
    argv = ["parta", "run", name, "--settings", settings_text(lab, name, **change), "--checkpoint", str(tmp / "epoch_2.pt"),
            "--data", str(tmp / "mnist.npz"), "--classifier", str(tmp / "classifier.pt"), "--out-dir", str(out),
            "--metrics-out", str(tmp / "metrics" / f"part_a_{name}.csv")]
    if name in ("hybrids", "illusions") and change.get("hybrid_sigma_choice", lab[1]["part_a"]["hybrid_sigma_choice"]) == "best":
        sweep = tmp / "experiments" / "hybrid_sweep" / "result.npz"  # the rule's input: the sweep's best sigma
        if not sweep.is_file():
            assert run(lab, "hybrid_sweep")[0] == 0
        argv += ["--hybrid-sweep", str(sweep)]
    return main(argv), out


def metrics(lab, name: str) -> pd.DataFrame:
    return pd.read_csv(lab[0] / "metrics" / f"part_a_{name}.csv")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_writes_its_files_and_figures(lab, mnist_hashes, name):
    rc, out = run(lab, name)
    assert rc == 0
    facts = json.loads((out / "facts.json").read_text())
    assert facts and all(re.fullmatch(r"[a-z0-9_]+", k) and isinstance(v, (int, float, str)) for k, v in facts.items())
    with np.load(out / "result.npz", allow_pickle=False) as npz:
        for key in npz.files:
            if npz[key].dtype.kind == "f" and npz[key].ndim == 4:  # images, in the backend's value range
                assert npz[key].dtype == np.float32 and npz[key].shape[1:] == (1, 28, 28)
                assert npz[key].min() >= 0 and npz[key].max() <= 1
    table = pd.read_csv(lab[0] / "metrics" / f"part_a_{name}.csv", dtype=str, keep_default_na=False)
    assert tuple(table.columns) == COLUMNS
    assert (table["experiment"] == f"part_a_{name}").all() and (table["epoch"] == "2").all()
    figures = lab[0] / "figures" / name
    assert main(["parta", "figure", name, "--result-dir", str(out), "--out-dir", str(figures)]) == 0
    pngs = sorted(figures.glob("*.png"))
    assert pngs and all(Image.open(p).format == "PNG" for p in pngs)


def test_figure_code_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, difflab.figures.part_a, difflab.commands.part_a; assert 'torch' not in sys.modules, 'torch'"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr


def test_benchmark_result_matches_its_rows_and_table(lab, mnist_hashes):
    rc, out = run(lab, "benchmark")
    assert rc == 0
    table = metrics(lab, "benchmark")
    assert set(table.n) == {6}
    with np.load(out / "result.npz") as r:
        mean, std, levels = r["mean"], r["std"], list(r["levels"])
    assert mean.shape == std.shape == (3, len(levels), 3)
    for mi, method in enumerate(("blur", "one_step", "iterative")):
        for li, t in enumerate(levels):
            for ki, measure in enumerate(("mse", "psnr", "ssim")):
                row = table[(table.metric == f"{method}_{measure}_mean") & (table.parameter == f"t={t}")]
                assert float(row.value.iloc[0]) == pytest.approx(mean[mi, li, ki], rel=1e-6)
    # PSNR = 10 log10(1 / MSE) per image, so the mean PSNR is at least 10 log10(1 / mean MSE) (Jensen)
    assert np.all(mean[:, :, 1] >= 10 * np.log10(1 / mean[:, :, 0]) - 1e-6)
    figures = lab[0] / "figures" / "benchmark"
    assert main(["parta", "figure", "benchmark", "--result-dir", str(out), "--out-dir", str(figures)]) == 0
    md = (figures / "benchmark.md").read_text()
    assert len([line for line in md.splitlines() if line.startswith("| ") and "±" in line]) == 3 * 3  # methods x levels
    # the table's caption (prose) lives in the section file, the table (numbers) in the figure job's output
    assert "{#tbl-a-benchmark}" not in md and "{#tbl-a-benchmark}" in (ROOT / "report/sections/part_a.qmd").read_text()


def test_inpainting_keeps_the_known_pixels_and_is_reproducible(lab, mnist_hashes):
    rc1, out = run(lab, "inpaint")
    first = (lab[0] / "metrics" / "part_a_inpaint.csv").read_text()
    with np.load(out / "result.npz") as r:
        images, originals, masks = r["images"], r["originals"], r["masks"]
    K, M = len(originals), len(masks)
    S = len(images) // (K * M)
    kept = (images - np.repeat(originals, M * S, axis=0)) * (1 - np.tile(np.repeat(masks, S, axis=0), (K, 1, 1, 1)))
    assert np.abs(kept).max() == 0.0
    rc2, _ = run(lab, "inpaint")
    assert rc1 == rc2 == 0 and (lab[0] / "metrics" / "part_a_inpaint.csv").read_text() == first
    assert run(lab, "inpaint", seed=181)[0] == 0
    assert (lab[0] / "metrics" / "part_a_inpaint.csv").read_text() != first


def test_user_images_are_used_and_bad_ones_listed(lab, mnist_hashes):
    rc, out = run(lab, "sdedit_inputs")
    facts = json.loads((out / "facts.json").read_text())
    assert rc == 0 and facts["num_user_images"] == 1 and facts["skipped"].startswith("broken.png (not an image")
    with np.load(out / "result.npz") as r:
        assert list(r["names"]) == ["hand-drawn 3", "DejaVu Sans 7", "1_stroke.png"]
        assert r["edits"].shape == (2 * 3, 1, 28, 28)


def test_sdedit_keeps_more_of_the_input_from_a_later_start(lab, mnist_hashes):
    rc, out = run(lab, "sdedit", sdedit_i_starts=[0, 4])
    table = metrics(lab, "sdedit")
    psnr = table.set_index("parameter").value
    assert rc == 0 and psnr["i_start=4"] > psnr["i_start=0"]
    assert json.loads((out / "facts.json").read_text())["psnr_trend"] == "rises"


def test_illusion_rates_are_shares_of_seeds(lab, mnist_hashes):
    rc, out = run(lab, "illusions")
    with np.load(out / "result.npz") as r:
        rates, kinds = r["rates"], list(r["kinds"])
    assert rc == 0 and kinds == ["anagram", "hybrid"] and rates.shape == (2, 3)
    assert np.all(np.isin(np.round(rates * 3), [0, 1, 2, 3]))  # k of 3 seeds
    assert np.all(rates[:, 2] <= rates[:, :2].min(axis=1))  # both views <= either view


@pytest.mark.parametrize("name,change,message", [
    ("sampling", {"sample_prompts": ["a 3", "a cat"]}, "part_a.sample_prompts[1]"),
    ("forward", {"test_images": [0, 12]}, "test index 12"),
    ("benchmark", {"benchmark_num_images": 13}, "part_a.benchmark_num_images"),
    ("img2img", {"img2img_prompts": ["a dog"]}, "part_a.img2img_prompts[0]"),
    ("inpaint", {"inpaint_masks": ["missing.png"]}, "part_a.inpaint_masks[0]"),
])
def test_inputs_only_the_job_can_check_are_one_line_errors(lab, mnist_hashes, capsys, name, change, message):
    rc, _ = run(lab, name, **change)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and message in err[-1] and err[-1].startswith("difflab parta: error:")


def test_settings_that_do_not_fit_the_job_are_refused(lab, capsys):
    rc, _ = run(lab, "forward", cfg_scale=7.0)
    assert rc == 2 and "part_a.forward" in capsys.readouterr().err


def test_cfg_scale_is_read_only_by_the_guided_experiments():
    from difflab.settings import config_keys

    guided = {name for name in EXPERIMENTS if "part_a.cfg_scale" in config_keys(f"part_a.{name}").values()}
    assert guided == {"sampling", "cfg", "spacing", "sdedit", "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids",
                      "illusions", "hybrid_sweep"}


def test_every_variable_of_the_section_is_a_fact(lab, mnist_hashes):
    section = (ROOT / "report" / "sections" / "part_a.qmd").read_text()
    used = set(re.findall(r"\{\{< var part_a\.([a-z0-9_]+)\.([a-z0-9_]+) >\}\}", section))
    assert {name for name, _ in used} == set(EXPERIMENTS)
    assert section.count("{{< var ") == len(re.findall(r"\{\{< var part_a\.[a-z0-9_]+\.[a-z0-9_]+ >\}\}", section))
    for name in sorted({name for name, _ in used}):
        facts_path = lab[0] / "experiments" / name / "facts.json"
        if not facts_path.is_file():
            assert run(lab, name)[0] == 0
        facts = json.loads(facts_path.read_text())
        missing = sorted(var for n, var in used if n == name and var not in facts)
        assert not missing, f"{name}: {missing}"


def test_every_figure_and_table_of_the_section_is_drawn(lab, mnist_hashes):
    section = (ROOT / "report" / "sections" / "part_a.qmd").read_text()
    files = re.findall(r"results/figures/part_a/([a-z0-9_]+)/([a-z0-9_]+\.(?:png|md))", section)
    assert {name for name, _ in files} == set(EXPERIMENTS)
    for name in sorted({name for name, _ in files}):
        out = lab[0] / "experiments" / name
        if not (out / "result.npz").is_file():
            assert run(lab, name)[0] == 0
        figures = lab[0] / "figures_all" / name
        assert main(["parta", "figure", name, "--result-dir", str(out), "--out-dir", str(figures)]) == 0
        assert all((figures / f).is_file() for n, f in files if n == name)


def test_the_rules_list_every_experiment_once():
    text = (ROOT / "rules" / "experiments" / "part_a.smk").read_text()
    listed = re.search(r"PART_A_EXPERIMENTS = \[([^\]]*)\]", text).group(1)
    assert re.findall(r'"([a-z0-9_]+)"', listed) == list(EXPERIMENTS)
    from difflab.commands.part_a import experiment_names
    from difflab.figures.part_a import FIGURES

    assert experiment_names() == list(EXPERIMENTS) == list(FIGURES)


@pytest.mark.parametrize("name", ["samples", "sdedit", "hybrids"])
def test_the_sampler_keys_reach_the_reverse_loop(lab, mnist_hashes, name):
    """part_a.sampler = ddim with eta 1 is the posterior DDPM step (the default), so the images agree to float
    precision; eta 0 is another sampler, so they differ."""
    images = {}
    for tag, change in (("ddpm", {}), ("ddim1", {"sampler": "ddim", "ddim_eta": 1.0}), ("ddim0", {"sampler": "ddim", "ddim_eta": 0.0})):
        rc, out = run(lab, name, **change)
        assert rc == 0
        with np.load(out / "result.npz", allow_pickle=False) as npz:
            images[tag] = np.concatenate([npz[k].ravel() for k in npz.files if npz[k].dtype.kind == "f" and npz[k].ndim == 4])
    assert np.allclose(images["ddim1"], images["ddpm"], atol=1e-4)
    assert not np.allclose(images["ddim0"], images["ddpm"], atol=1e-3)
