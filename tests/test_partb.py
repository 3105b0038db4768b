"""`difflab partb` sub-verbs on tiny random UNets (D = 8, T = 12) and a synthetic MNIST-format npz."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab import DifflabError, data
from difflab.checkpoint import save_checkpoint
from difflab.cli import main
from difflab.metrics.tables import read_metrics, write_metrics
from difflab.models import build_model, count_parameters
from difflab.partb import BLUR_SIGMAS, cli, guidance_of
from difflab.schedule import NoiseSchedule, sigma_to_timestep

T = 12
SETTINGS = {
    "seed": 180,
    "device": "cpu",
    "profile": "test",
    "denoiser": {"sigma": 0.5, "hidden": 8, "noise_levels": [0.0, 0.5, 1.0], "ood_num_images": 24, "blur_holdout": 16},
    "ddpm": {"num_timesteps": T, "guidance_scale": 5.0, "cfg_sweep": [0, 5], "time_grid_samples": 10,
             "class_grid_per_digit": 2, "gif_frames": 4, "sample_batch_size": 16},
}
EXTRACTOR = "mnist-classifier(width=8)"
INCEPTION = "inception-v3-compat(pool3, 2048)"


def settings_arg(**sections) -> str:
    import json

    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in SETTINGS.items()}
    for section, values in sections.items():
        merged[section].update(values)
    return json.dumps(merged)


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_digits(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth uint8 images (random 4x4 patterns upscaled bilinearly), so blurring helps against noise."""
    coarse = torch.from_numpy(rng.random((n, 1, 4, 4), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(28, 28), mode="bilinear", align_corners=False)
    return (fine[:, 0].numpy() * 255).round().astype(np.uint8)


@pytest.fixture
def npz(tmp_path, monkeypatch):
    """A synthetic mnist.npz (40 train, 48 test images) whose hashes difflab.data accepts for this test."""
    rng = np.random.default_rng(0)
    arrays = {"train_images": smooth_digits(40, rng), "train_labels": rng.integers(0, 10, 40).astype(np.uint8),
              "test_images": smooth_digits(48, rng), "test_labels": rng.integers(0, 10, 48).astype(np.uint8)}
    path = tmp_path / "mnist.npz"
    data.write_mnist(path, arrays)
    for name, digest in data.array_hashes(arrays).items():
        monkeypatch.setitem(data.MNIST_SHA256, name, digest)
    return path


def make_checkpoint(path, kind: str, epoch: int, weights_seed: int | None = None):
    """A checkpoint in train.py's format with random weights (seeded by `weights_seed`, default the epoch)."""
    arch = {"denoiser": "unconditional", "time": "time", "class": "class"}[kind]
    torch.manual_seed(epoch if weights_seed is None else weights_seed)
    model = build_model(arch, 8)
    steps = 6
    ckpt = {"architecture": arch, "kind": kind, "hidden": 8, "epoch": epoch, "model": model.state_dict(),
            "losses": [1.0 / (1 + 0.5 * i) for i in range(steps * epoch)], "steps_per_epoch": steps,
            "epoch_seconds": [1.5] * epoch, "images_per_second": 40.0, "settings": {}}
    if kind == "denoiser":
        ckpt["sigma"] = 0.5
    else:
        ckpt.update(num_timesteps=T, beta_start=1e-4, beta_end=0.02, p_uncond=0.1 if kind == "class" else 0.0)
    save_checkpoint(path, ckpt)
    return ckpt


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    out = {}
    for kind in ("denoiser", "time", "class"):
        for epoch in (1, 2):
            out[kind, epoch] = folder / f"{kind}_{epoch}.pt"
            make_checkpoint(out[kind, epoch], kind, epoch)
    return out


def check_snippet(path, figures=(), tables=()):
    """The snippet contract: no headings, each figure id once with an existing image, each table id on a caption line."""
    text = path.read_text()
    assert not any(line.lstrip().startswith("#") for line in text.splitlines())
    found = dict(re.findall(r"!\[.*?\]\(([^)]+)\)\{#(fig-b-[\w-]+)\}", text))
    by_id = {ident: image for image, ident in found.items()}
    assert sorted(by_id) == sorted(figures)
    for image in found:
        assert Path(image).exists(), image
    for ident in tables:
        assert re.search(rf"^: .+ \{{#{ident}\}}$", text, flags=re.M), ident
        assert "|" in text
    return text


# ----------------------------------------------------------------------------- denoiser-figures

def test_denoiser_figures(npz, ckpts, tmp_path):
    out, snippet = tmp_path / "fig", tmp_path / "snip" / "part_b_denoiser.md"
    cli(["denoiser-figures", "--data", str(npz), "--checkpoints", str(ckpts["denoiser", 2]), str(ckpts["denoiser", 1]),
         "--settings", settings_arg(), "--out-dir", str(out), "--snippet", str(snippet)])
    text = check_snippet(snippet, ["fig-b-noising", "fig-b-denoiser-loss", "fig-b-denoiser-epoch1", "fig-b-denoiser-epoch2"])
    # Numbers come from the last checkpoint's losses: first step 1, epoch-2 mean of the last 6 steps.
    losses = [1.0 / (1 + 0.5 * i) for i in range(12)]
    assert f"a mean of {np.mean(losses[6:]):.3g} over epoch 2 (12 steps in all)" in text
    assert "first 24 MNIST test images" in text
    # noising grid: 4 digits (rows) x 3 sigmas (columns) -> taller than wide
    width, height = Image.open(out / "noising.png").size
    assert height > width


# ----------------------------------------------------------------------------- ood

def test_ood_table_and_metrics(npz, ckpts, tmp_path):
    metrics = tmp_path / "ood.csv"
    snippet = tmp_path / "part_b_ood.md"
    cli(["ood", "--data", str(npz), "--denoiser", str(ckpts["denoiser", 2]), "--time-model", str(ckpts["time", 2]),
         "--settings", settings_arg(), "--out-dir", str(tmp_path / "ood"), "--snippet", str(snippet), "--metrics-out", str(metrics)])
    text = check_snippet(snippet, ["fig-b-ood", "fig-b-ood-psnr"], ["tbl-b-ood"])
    assert "16 held-out test images (the last 16, disjoint from the evaluated ones)" in text
    df = read_metrics(metrics)
    schedule = NoiseSchedule.linear(1e-4, 0.02, T)
    blur = {}
    for sigma in SETTINGS["denoiser"]["noise_levels"]:
        rows = df[df["parameter"] == f"sigma={sigma:g}"]
        for model in ("denoiser", "gaussian_blur", "time"):
            mse = rows[(rows["model"] == model) & (rows["metric"] == "mse_mean")]
            psnr = rows[(rows["model"] == model) & (rows["metric"] == "psnr_mean")]
            assert len(mse) == len(psnr) == 1 and int(mse["n"].iloc[0]) == 24
            # mean of per-image PSNR >= PSNR of the mean MSE (Jensen: -log is convex)
            assert psnr["value"].iloc[0] >= 10 * math.log10(1 / mse["value"].iloc[0]) - 1e-9
        blur[sigma] = rows[rows["metric"] == "blur_sigma"]["value"].iloc[0]
        assert blur[sigma] in BLUR_SIGMAS
        assert rows[rows["metric"] == "timestep"]["value"].iloc[0] == sigma_to_timestep(sigma, schedule)
    # Smooth images: no noise -> the lightest blur; strong noise -> a heavier one.
    assert blur[0.0] == min(BLUR_SIGMAS) and blur[1.0] > blur[0.0]


def test_ood_caps_the_evaluated_images_and_rejects_a_holdout_without_room(npz, ckpts, tmp_path):
    common = ["--data", str(npz), "--denoiser", str(ckpts["denoiser", 2]), "--time-model", str(ckpts["time", 2]),
              "--out-dir", str(tmp_path / "o"), "--snippet", str(tmp_path / "s.md"), "--metrics-out", str(tmp_path / "m.csv")]
    cli(["ood", *common, "--settings", settings_arg(denoiser={"ood_num_images": 10000, "noise_levels": [0.5]})])
    assert set(read_metrics(tmp_path / "m.csv")["n"].dropna()) == {48 - 16, 16}
    with pytest.raises(DifflabError, match="blur_holdout"):
        cli(["ood", *common, "--settings", settings_arg(denoiser={"blur_holdout": 48})])
    with pytest.raises(DifflabError, match="expected 'unconditional'"):
        cli(["ood", *common[:2], "--denoiser", str(ckpts["time", 2]), *common[4:], "--settings", settings_arg()])


# ----------------------------------------------------------------------------- sample

def test_sample_class_and_time(ckpts, tmp_path):
    from difflab.metrics.cli import load_samples

    out = tmp_path / "class.npz"
    run = lambda *extra, path=out, ck=ckpts["class", 2]: cli(["sample", "--checkpoint", str(ck), "--n", "23", "--settings", settings_arg(), "--out", str(path), *extra])  # noqa: E731
    run()
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
        assert images.shape == (23, 28, 28) and images.dtype == np.float32
        assert images.min() >= 0 and images.max() <= 1
        assert labels.tolist() == [i % 10 for i in range(23)] and labels.dtype == np.int64
        assert float(f["guidance"]) == 5.0 and int(f["epoch"]) == 2 and int(f["seed"]) > 0
    again = tmp_path / "again.npz"
    run(path=again)
    assert np.array_equal(np.load(again)["images"], images)  # deterministic
    run("--guidance", "2", path=tmp_path / "g2.npz")
    assert float(np.load(tmp_path / "g2.npz")["guidance"]) == 2.0
    loaded, _ = load_samples(str(out))  # the FID job's reader accepts the file
    assert tuple(loaded.shape) == (23, 1, 28, 28)

    time_out = tmp_path / "time.npz"
    run(path=time_out, ck=ckpts["time", 1])
    with np.load(time_out) as f:
        assert (f["labels"] == -1).all() and math.isnan(float(f["guidance"])) and int(f["epoch"]) == 1
    with pytest.raises(DifflabError, match="class-conditioned model only"):
        run("--guidance", "3", path=tmp_path / "bad.npz", ck=ckpts["time", 1])
    assert not (tmp_path / "bad.npz").exists()


# ----------------------------------------------------------------------------- ddpm-figures

@pytest.mark.parametrize("kind", ["time", "class"])
def test_ddpm_figures_same_noise_every_epoch(kind, tmp_path):
    # The same weights saved as epochs 1 and 3: with the same seed the two grids must be identical images.
    first, third = tmp_path / "e1.pt", tmp_path / "e3.pt"
    make_checkpoint(first, kind, 1, weights_seed=7)
    make_checkpoint(third, kind, 3, weights_seed=7)
    out, snippet = tmp_path / "fig", tmp_path / f"part_b_{kind}.md"
    cli(["ddpm-figures", "--model", kind, "--checkpoints", str(third), str(first), "--settings", settings_arg(),
         "--out-dir", str(out), "--snippet", str(snippet)])
    check_snippet(snippet, [f"fig-b-{kind}-loss", f"fig-b-{kind}-epoch1", f"fig-b-{kind}-epoch3", f"fig-b-{kind}-gif"])
    assert (out / "samples_epoch_1.png").read_bytes() == (out / "samples_epoch_3.png").read_bytes()
    gif = Image.open(out / "reverse_process.gif")
    assert gif.n_frames == SETTINGS["ddpm"]["gif_frames"]
    # time: 10 samples in 1 row of 10; class: 2 per digit in 2 rows of 10 -> the class grid is taller
    width, height = Image.open(out / "samples_epoch_1.png").size
    assert (height / width > 0.15) == (kind == "class")


def test_ddpm_figures_rejects_the_wrong_model(ckpts, tmp_path):
    with pytest.raises(DifflabError, match="expected 'class'"):
        cli(["ddpm-figures", "--model", "class", "--checkpoints", str(ckpts["time", 1]), "--settings", settings_arg(),
             "--out-dir", str(tmp_path), "--snippet", str(tmp_path / "s.md")])


# ----------------------------------------------------------------------------- cfg-figures

def cfg_metrics(folder, values):
    paths = []
    for gamma, fid, acc in values:
        base = {"experiment": "cfg_sweep", "model": "class", "epoch": 2, "parameter": f"guidance={gamma}", "n": 64}
        path = folder / f"cfg_guidance_{gamma}.csv"
        write_metrics(path, [{**base, "metric": "fid", "value": fid, "extractor": EXTRACTOR},
                             {**base, "metric": "fid", "value": fid * 4, "extractor": INCEPTION},
                             {**base, "metric": "class_accuracy", "value": acc, "extractor": EXTRACTOR}])
        paths.append(str(path))
    return paths


def test_cfg_figures(ckpts, tmp_path):
    metrics = cfg_metrics(tmp_path, [(0, 31.5, 0.42), (5, 12.25, 0.875)])
    snippet = tmp_path / "part_b_cfg.md"
    cli(["cfg-figures", "--checkpoint", str(ckpts["class", 2]), "--metrics", *metrics, "--settings", settings_arg(),
         "--out-dir", str(tmp_path / "cfg"), "--snippet", str(snippet)])
    text = check_snippet(snippet, ["fig-b-cfg-grid", "fig-b-cfg-tradeoff"], ["tbl-b-cfg"])
    assert "is lowest, 12.2, at γ = 5" in text or "is lowest, 12.3, at γ = 5" in text
    assert "42.0% of the samples at γ = 0 and 87.5% at γ = 5" in text
    assert f"FID [{EXTRACTOR}]" in text and f"FID [{INCEPTION}]" in text
    # the primary (MNIST-classifier) FID column comes before the Inception one
    assert text.index(f"FID [{EXTRACTOR}]") < text.index(f"FID [{INCEPTION}]")
    with pytest.raises(DifflabError, match="cfg_sweep"):
        floor = tmp_path / "floor.csv"
        write_metrics(floor, [{"experiment": "fid_floor", "model": "mnist-train", "metric": "fid", "value": 1.0}])
        cli(["cfg-figures", "--checkpoint", str(ckpts["class", 2]), "--metrics", str(floor), "--settings", settings_arg(),
             "--out-dir", str(tmp_path / "cfg"), "--snippet", str(snippet)])


def test_guidance_parameter_parsing():
    assert guidance_of("guidance=5") == 5.0
    assert guidance_of("guidance=0.5") == 0.5
    assert guidance_of("") is None and guidance_of("width=32") is None


# ----------------------------------------------------------------------------- fid-table

def test_fid_table(tmp_path):
    paths = []
    for kind, fids in (("time", [40.0, 18.5]), ("class", [35.0, 9.75])):
        for epoch, fid in zip((1, 2), fids):
            base = {"experiment": f"ddpm_{kind}", "model": kind, "epoch": epoch, "parameter": "guidance=5" if kind == "class" else "", "n": 64}
            rows = [{**base, "metric": "fid", "value": fid, "extractor": EXTRACTOR}]
            if kind == "class":
                rows.append({**base, "metric": "class_accuracy", "value": 0.5 + 0.2 * epoch, "extractor": EXTRACTOR})
            paths.append(tmp_path / f"{kind}_{epoch}.csv")
            write_metrics(paths[-1], rows)
    paths.append(tmp_path / "floor.csv")
    write_metrics(paths[-1], [{"experiment": "fid_floor", "model": "mnist-train", "metric": "fid", "value": 0.625, "n": 64, "extractor": EXTRACTOR}])
    paths.append(tmp_path / "classifier.csv")
    write_metrics(paths[-1], [{"experiment": "classifier", "model": "cnn", "epoch": 1, "parameter": "width=8", "metric": "test_accuracy", "value": 0.9712, "n": 48}])
    snippet = tmp_path / "part_b_fid.md"
    cli(["fid-table", "--metrics", *map(str, paths), "--settings", settings_arg(), "--out-dir", str(tmp_path / "fid"), "--snippet", str(snippet)])
    text = check_snippet(snippet, ["fig-b-fid"], ["tbl-b-fid"])
    assert "40 at epoch 1 and 18.5 at epoch 2 for the time-conditioned model" in text
    assert "35 at epoch 1 and 9.75 at epoch 2 for the class-conditioned (γ = 5) model" in text
    assert "the floor, 0.625" in text and "97.12% of 48 MNIST test digits" in text
    assert "At epoch 2 it assigns 90.0% of the class-conditioned samples" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in table[1:]] == ["time-conditioned"] * 2 + ["class-conditioned (γ = 5)"] * 2 + ["real vs real (train vs test)"]


# ----------------------------------------------------------------------------- models

def test_models_table(ckpts, tmp_path):
    from difflab.metrics.classifier import build_classifier

    classifier = tmp_path / "classifier.pt"
    save_checkpoint(classifier, {"architecture": "classifier", "width": 8, "model": build_classifier(8).state_dict(), "epoch": 1,
                                 "history": [{"epoch": 1, "loss": 0.3, "seconds": 2.5, "images_per_second": 800.0}]})
    snippet = tmp_path / "part_b_models.md"
    cli(["models", "--checkpoints", *(str(ckpts[k, 2]) for k in ("denoiser", "time", "class")), "--classifier", str(classifier), "--snippet", str(snippet)])
    text = check_snippet(snippet, [], ["tbl-b-models"])
    for arch in ("unconditional", "time", "class"):
        assert f"{count_parameters(build_model(arch, 8)):,} (width 8)" in text
    assert f"{count_parameters(build_classifier(8)):,} (width 8)" in text


# ----------------------------------------------------------------------------- errors through the CLI

def test_missing_setting_is_a_one_line_error(npz, ckpts, tmp_path, capsys):
    code = main(["partb", "ood", "--data", str(npz), "--denoiser", str(ckpts["denoiser", 2]), "--time-model", str(ckpts["time", 2]),
                 "--settings", '{"seed": 1, "device": "cpu", "denoiser": {"noise_levels": [0.5]}}', "--out-dir", str(tmp_path),
                 "--snippet", str(tmp_path / "s.md"), "--metrics-out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "part_b.denoiser.blur_holdout" in err
