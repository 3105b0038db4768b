"""Every Part B experiment through `difflab partb run/figure` on tiny random UNets and a synthetic MNIST npz:
Result numbers, the files written, and the report section's variables and figure paths."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import factories as fx
from difflab import DifflabError
from difflab.cli import main
from difflab.commands.part_b import cli
from difflab.metrics.tables import read_metrics
from difflab.schedule import NoiseSchedule, sigma_to_timestep

ROOT = Path(__file__).resolve().parents[2]
SECTION = ROOT / "report" / "sections" / "part_b.qmd"


def inputs_of(name: str, lab) -> list[str]:
    ck = lab["ckpt"]
    return {
        "denoiser": ["--data", lab["npz"], "--checkpoints", ck["denoiser", 2], ck["denoiser", 1]],
        "ood": ["--data", lab["npz"], "--denoiser", ck["denoiser", 2], "--time-model", ck["time", 2]],
        "time_grids": ["--checkpoints", ck["time", 2], ck["time", 1]],
        "class_grids": ["--checkpoints", ck["class", 1], ck["class", 2]],
        "time_gif": ["--checkpoint", ck["time", 2]],
        "class_gif": ["--checkpoint", ck["class", 2]],
        "cfg": ["--checkpoint", ck["class", 2]],
        "time_steps": ["--checkpoint", ck["time", 2], "--data", lab["npz"], "--classifier", lab["classifier"]],
        "class_steps": ["--checkpoint", ck["class", 2], "--data", lab["npz"], "--classifier", lab["classifier"]],
        "steps": ["--metrics", *(lab["root"] / "results" / "metrics" / f"part_b_{k}_steps.csv" for k in ("time", "class")),
                  "--results", *(lab["root"] / "results" / "experiments" / "part_b" / f"{k}_steps" / "result.npz"
                                 for k in ("time", "class"))],
        "cfg_tradeoff": ["--metrics", *lab["cfg_csvs"]],
        "fid": ["--metrics", *lab["fid_csvs"]],
        "ema": ["--metrics", *lab["ema_csvs"]],
        "models": ["--checkpoints", ck["denoiser", 2], ck["time", 2], ck["class", 2], "--classifier", lab["classifier"]],
    }[name]


def run(name: str, lab, out: Path, **changes) -> Path:
    """Run experiment `name` as its rule does, into out/results/...; returns its result folder."""
    result = out / "results" / "experiments" / "part_b" / name
    cli(["run", name, "--settings", fx.settings(name, **changes), *map(str, inputs_of(name, lab)),
         "--out-dir", str(result), "--metrics-out", str(out / "results" / "metrics" / f"part_b_{name}.csv")])
    return result


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """All eleven experiments and their figures, run once under <tmp>/results (the repository layout)."""
    folder = tmp_path_factory.mktemp("part_b")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        lab = {"root": folder, "npz": fx.write_npz(folder, mp), "ckpt": {}, "classifier": folder / "classifier.pt",
               "cfg_csvs": fx.cfg_csvs(folder), "fid_csvs": fx.fid_csvs(folder),
               "ema_csvs": fx.ema_csvs(folder)}
        for kind in ("denoiser", "time", "class"):
            for epoch in (1, 2):
                lab["ckpt"][kind, epoch] = folder / f"{kind}_{epoch}.pt"
                fx.make_checkpoint(lab["ckpt"][kind, epoch], kind, epoch)
        fx.make_classifier(lab["classifier"])
        for name in fx.SETTINGS:
            result = run(name, lab, folder)
            cli(["figure", name, "--result-dir", str(result), "--out-dir", str(folder / "results" / "figures" / "part_b" / name)])
        lab["mp"] = mp
        yield lab
    torch.set_num_threads(before)


def result(lab, name: str) -> dict:
    with np.load(lab["root"] / "results" / "experiments" / "part_b" / name / "result.npz") as f:
        return {key: f[key] for key in f.files}


def facts(lab, name: str) -> dict:
    import json

    return json.loads((lab["root"] / "results" / "experiments" / "part_b" / name / "facts.json").read_text())


def metrics(lab, name: str):
    return read_metrics(lab["root"] / "results" / "metrics" / f"part_b_{name}.csv")


# ----------------------------------------------------------------------------- the report section


def test_every_variable_of_the_section_is_a_written_fact(lab):
    used = re.findall(r"\{\{< var part_b\.(\w+)\.(\w+) >\}\}", SECTION.read_text())
    assert used
    missing = sorted({f"{name}.{var}" for name, var in used if var not in facts(lab, name)})
    assert missing == []


def test_no_variable_inside_math():
    """Quarto releases before the fix of quarto-cli #14255 leave shortcodes inside math unresolved: keep them outside."""
    text = SECTION.read_text()
    spans = re.findall(r"\$\$.*?\$\$", text, flags=re.S)
    spans += [m for line in re.sub(r"\$\$.*?\$\$", "", text, flags=re.S).splitlines() for m in re.findall(r"\$[^$]+\$", line)]
    assert spans and not [span for span in spans if "{{<" in span]


def test_every_figure_and_table_of_the_section_is_drawn(lab):
    text = SECTION.read_text()
    paths = re.findall(r"\]\((results/figures/part_b/[^)]+)\)", text) + re.findall(r"include (results/figures/part_b/\S+\.md)", text)
    assert len(paths) >= 18
    for path in paths:
        assert (lab["root"] / path).is_file(), path
    ids = re.findall(r"\{#((?:fig|tbl)-b-[\w-]+)\}", text)
    assert len(ids) == len(set(ids))  # each id once


# ----------------------------------------------------------------------------- denoiser


def test_denoiser(lab):
    r, f = result(lab, "denoiser"), facts(lab, "denoiser")
    # the last checkpoint's losses: first step 1, epoch-2 mean of its last 6 steps
    losses = fx.loss_history(2)
    assert f["final_loss_mean"] == f"{np.mean(losses[6:]):.3g}" and f["steps"] == 12 and f["first_loss"] == "1"
    assert r["epochs"].tolist() == [1, 2]  # sorted although passed as 2, 1
    assert r["noising"].shape == (4 * 3, 1, 28, 28) and r["denoised"].shape == (2, 8, 1, 28, 28)
    assert f["n_eval"] == 24 and f["noise_levels"] == "0, 0.5, 1"
    # the noising row of sigma = 0 is the clean digit itself
    assert np.array_equal(r["noising"][0], r["clean"][0])
    rows = metrics(lab, "denoiser")
    assert rows["value"].tolist() == pytest.approx(r["mse"].tolist()) and set(rows["n"]) == {24}
    # noising grid: 4 digits (rows) x 3 sigmas (columns) -> taller than wide
    width, height = Image.open(lab["root"] / "results/figures/part_b/denoiser/noising.png").size
    assert height > width


# ----------------------------------------------------------------------------- ood


def test_ood_table_and_metrics(lab):
    df, r, f = metrics(lab, "ood"), result(lab, "ood"), facts(lab, "ood")
    schedule = NoiseSchedule.linear(1e-4, 0.02, fx.T)
    blur = {}
    for i, sigma in enumerate(fx.SETTINGS["ood"]["noise_levels"]):
        rows = df[df["parameter"] == f"sigma={sigma:g}"]
        for j, model in enumerate(("denoiser", "gaussian_blur", "time")):
            mse = rows[(rows["model"] == model) & (rows["metric"] == "mse_mean")]
            psnr = rows[(rows["model"] == model) & (rows["metric"] == "psnr_mean")]
            assert len(mse) == len(psnr) == 1 and int(mse["n"].iloc[0]) == 24
            assert mse["value"].iloc[0] == pytest.approx(r["mse"][j, i]) and psnr["value"].iloc[0] == pytest.approx(r["psnr"][j, i])
            # mean of per-image PSNR >= PSNR of the mean MSE (Jensen: -log is convex)
            assert psnr["value"].iloc[0] >= 10 * math.log10(1 / mse["value"].iloc[0]) - 1e-9
        blur[sigma] = rows[rows["metric"] == "blur_sigma"]["value"].iloc[0]
        assert blur[sigma] in fx.SETTINGS["ood"]["blur_sigmas"]
        assert rows[rows["metric"] == "timestep"]["value"].iloc[0] == sigma_to_timestep(sigma, schedule)
    # Smooth images: no noise -> the lightest blur; strong noise -> a heavier one.
    assert blur[0.0] == min(fx.SETTINGS["ood"]["blur_sigmas"]) and blur[1.0] > blur[0.0]
    assert r["blur_candidates"].tolist() == fx.SETTINGS["ood"]["blur_sigmas"]
    assert f["holdout"] == 16 and f["n"] == 24 and f["num_levels"] == 3
    assert f["unet_beats_blur"] == int((r["psnr"][0] > r["psnr"][1]).sum())
    assert r["shown"].shape == (2 * 4 * 3, 1, 28, 28)
    table = (lab["root"] / "results/figures/part_b/ood/ood_table.md").read_text().splitlines()
    assert len(table) == 2 + 3 and "blur σ_b" in table[0]


def test_ood_caps_the_evaluated_images_and_rejects_a_holdout_without_room(lab, tmp_path):
    run("ood", lab, tmp_path, ood_num_images=10000, noise_levels=[0.5])
    assert set(metrics({"root": tmp_path}, "ood")["n"].dropna()) == {48 - 16, 16}
    with pytest.raises(DifflabError, match="blur_holdout"):
        run("ood", lab, tmp_path, blur_holdout=48)
    wrong = dict(lab, ckpt={**lab["ckpt"], ("denoiser", 2): lab["ckpt"]["time", 2]})
    with pytest.raises(DifflabError, match="expected 'unconditional'"):
        run("ood", wrong, tmp_path)




# ----------------------------------------------------------------------------- DDPM grids and GIFs


@pytest.mark.parametrize("kind", ["time", "class"])
def test_ddpm_grids_same_noise_every_epoch_and_gif_ends_on_the_last_grid(kind, lab, tmp_path):
    # The same weights saved as epochs 1 and 3: with the same seed the two grids must be identical.
    first, third = tmp_path / "e1.pt", tmp_path / "e3.pt"
    fx.make_checkpoint(first, kind, 1, weights_seed=7)
    fx.make_checkpoint(third, kind, 3, weights_seed=7)
    out = run(f"{kind}_grids", dict(lab, ckpt={**lab["ckpt"], (kind, 1): third, (kind, 2): first}), tmp_path)
    with np.load(out / "result.npz") as f:
        samples, epochs = f["samples"], f["epochs"]
    assert epochs.tolist() == [1, 3] and np.array_equal(samples[0], samples[1])
    n = 10 if kind == "time" else 20
    assert samples.shape == (2, n, 1, 28, 28)
    gif = result(lab, f"{kind}_gif")["frames"]
    assert gif.shape[0] == fx.SETTINGS[f"{kind}_gif"]["gif_frames"]
    assert np.array_equal(gif[-1], result(lab, f"{kind}_grids")["samples"][-1])  # the GIF ends on the last grid
    frames = Image.open(lab["root"] / f"results/figures/part_b/{kind}_gif/reverse_process.gif")
    assert frames.n_frames == fx.SETTINGS[f"{kind}_gif"]["gif_frames"]


def test_class_grid_labels_and_facts(lab):
    f = facts(lab, "class_grids")
    assert f["guidance"] == "5" and f["per_digit"] == 2 and f["p_uncond"] == "0.1" and f["last_timestep"] == fx.T - 1
    assert metrics(lab, "class_grids")["metric"].tolist() == ["train_loss_mean"] * 2


def test_ddpm_grids_reject_the_wrong_model(lab, tmp_path):
    with pytest.raises(DifflabError, match="expected 'class'"):
        run("class_grids", dict(lab, ckpt={**lab["ckpt"], ("class", 1): lab["ckpt"]["time", 1], ("class", 2): lab["ckpt"]["time", 2]}), tmp_path)


# ----------------------------------------------------------------------------- CFG grid


def test_cfg_grid_uses_the_same_noise_for_every_scale(lab, tmp_path):
    r = result(lab, "cfg")
    assert r["images"].shape == (2 * 10, 1, 28, 28) and r["guidance"].tolist() == [0, 5]
    same = run("cfg", lab, tmp_path, cfg_sweep=[5, 5])
    with np.load(same / "result.npz") as f:
        images = f["images"]
    assert np.array_equal(images[:10], images[10:]) and np.array_equal(images[:10], r["images"][10:])


# ----------------------------------------------------------------------------- errors through the CLI


def test_settings_without_a_key_is_a_one_line_error(lab, tmp_path, capsys):
    code = main(["partb", "run", "ood", "--settings", '{"seed": 1, "device": "cpu", "noise_levels": [0.5]}',
                 *map(str, inputs_of("ood", lab)), "--out-dir", str(tmp_path), "--metrics-out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "blur_holdout" in err and "part_b.ood" in err
    assert not (tmp_path / "result.npz").exists()


# ----------------------------------------------------------------------------- quality against steps


@pytest.mark.parametrize("kind", ["time", "class"])
def test_steps_cells_share_noise_and_the_full_ddpm_chain_is_algorithm_b2(kind, lab):
    from difflab.checkpoint import load_model
    from difflab.runtime import make_generator
    from difflab.sampling import ddpm_sample

    r = result(lab, f"{kind}_steps")
    assert r["sampler"].tolist() == ["ddpm", "ddim", "ddpm", "ddim"] and r["steps"].tolist() == [2, 2, 12, 12]
    assert r["evaluations"].tolist() == [s * (2 if kind == "class" else 1) for s in (2, 2, 12, 12)]
    assert np.isnan(r["class_accuracy"]).all() == (kind == "time")
    assert (r["seconds_per_1000"] > 0).all() and np.isfinite(r["fid"]).all()
    assert not np.allclose(r["samples"][2], r["samples"][3])  # DDIM is another sampler on the same noise
    model, ckpt = load_model(str(lab["ckpt"][kind, 2]), "cpu")
    labels = torch.arange(8) % 10 if kind == "class" else None
    x, _ = ddpm_sample(model, ckpt.schedule(), 8, make_generator(180, "partb", "steps", kind, 12), "cpu", labels=labels,
                       guidance_scale=5.0 if kind == "class" else None, show_progress=False)
    assert np.allclose(r["samples"][2], x.clamp(0, 1)[:10].numpy(), atol=1e-6)
    rows = metrics(lab, f"{kind}_steps")
    assert set(rows["parameter"]) == {"sampler=ddpm,steps=2", "sampler=ddim,steps=2", "sampler=ddpm,steps=12", "sampler=ddim,steps=12"}
    assert "seconds_per_1000" not in set(rows["metric"])  # wall time: in result.npz, not in the reproducible CSV


def test_steps_summary_gathers_both_models(lab):
    r, f = result(lab, "steps"), facts(lab, "steps")
    assert r["model"].tolist() == ["time"] * 4 + ["class"] * 4
    assert r["sampler"].tolist() == ["ddpm", "ddpm", "ddim", "ddim"] * 2
    assert f["few"] == 12 and f["full"] == 12 and f["steps"] == "2, 12"
    assert float(f["class_ddim_few_fid"]) == pytest.approx(float(result(lab, "class_steps")["fid"][3]), rel=1e-2)
    assert r["seconds_per_1000"][-1] == pytest.approx(float(result(lab, "class_steps")["seconds_per_1000"][3]))
