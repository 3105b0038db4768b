"""`difflab sample`: the samples file the FID jobs read (class, time, one guidance scale of the CFG sweep)."""

import json
import math

import numpy as np
import pytest

from difflab import DifflabError
from difflab.cli import main
from difflab.metrics.scores import load_samples
from helpers import factories as fx


def settings(job, **values):
    base = {"seed": 180, "device": "cpu", "sample_batch_size": 16, "sampler": "ddpm", "ddim_eta": 0.0, "sample_precision": "auto",
            "compile": False}
    return json.dumps({**base, **values})


@pytest.mark.usefixtures("one_thread")
def test_sample_class_time_and_cfg_sweep(tmp_path, capsys):
    ckpts = {kind: tmp_path / f"{kind}.pt" for kind in ("time", "class")}
    fx.make_checkpoint(ckpts["time"], "time", 1)
    fx.make_checkpoint(ckpts["class"], "class", 2)

    def run(job, values, path, ck=ckpts["class"], *extra):
        return main(["sample", "--job", job, "--checkpoint", str(ck), "--settings", settings(job, **values),
                     "--out", str(path), *extra])

    out = tmp_path / "class.npz"
    assert run("samples.class", {"guidance_scale": 5.0, "num_images": 23}, out) == 0
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
        assert images.shape == (23, 28, 28) and images.dtype == np.float32
        assert images.min() >= 0 and images.max() <= 1
        assert labels.tolist() == [i % 10 for i in range(23)] and labels.dtype == np.int64
        assert float(f["guidance"]) == 5.0 and int(f["epoch"]) == 2 and str(f["model"]) == "class" and int(f["seed"]) > 0
    run("samples.class", {"guidance_scale": 5.0, "num_images": 23}, tmp_path / "again.npz")
    assert np.array_equal(np.load(tmp_path / "again.npz")["images"], images)  # deterministic
    run("samples.cfg_sweep", {"cfg_sweep_num_images": 23}, tmp_path / "g2.npz", ckpts["class"], "--guidance", "2")
    assert float(np.load(tmp_path / "g2.npz")["guidance"]) == 2.0
    loaded, _ = load_samples(str(out))  # the FID job's reader accepts the file
    assert tuple(loaded.shape) == (23, 1, 28, 28)

    run("samples.time", {"num_images": 23}, tmp_path / "time.npz", ckpts["time"])
    with np.load(tmp_path / "time.npz") as f:
        assert (f["labels"] == -1).all() and math.isnan(float(f["guidance"])) and int(f["epoch"]) == 1
    capsys.readouterr()
    assert run("samples.class", {"guidance_scale": 5.0, "num_images": 23}, tmp_path / "bad.npz", ckpts["time"]) == 2
    assert "holds the time model, which job 'samples.class' does not sample" in capsys.readouterr().err
    assert not (tmp_path / "bad.npz").exists()
    with pytest.raises(DifflabError, match="--guidance is required"):
        from difflab.commands.samples import cli

        cli(["--job", "samples.cfg_sweep", "--checkpoint", str(ckpts["class"]), "--settings", "{}", "--out", str(tmp_path / "x.npz")])


@pytest.mark.usefixtures("one_thread")
def test_ema_samples_use_the_averaged_weights_with_the_raw_samples_noise(tmp_path):
    """--weights ema samples the checkpoint's EMA weights with the same seeds: equal to the raw samples of a checkpoint
    whose raw weights are those EMA weights, and different from the raw samples of the same checkpoint."""
    two, ema_as_raw = tmp_path / "two.pt", tmp_path / "ema_as_raw.pt"
    fx.make_checkpoint(two, "time", 1, weights_seed=1, ema_seed=2)
    fx.make_checkpoint(ema_as_raw, "time", 1, weights_seed=2)

    def images(ck, *extra):
        out = tmp_path / f"{ck.stem}{'_'.join(extra)}.npz"
        assert main(["sample", "--job", "samples.time", "--checkpoint", str(ck), "--settings",
                     settings("samples.time", num_images=12), "--out", str(out), *extra]) == 0
        return np.load(out)["images"]

    ema = images(two, "--weights", "ema")
    assert np.array_equal(ema, images(ema_as_raw))
    assert not np.array_equal(ema, images(two))
