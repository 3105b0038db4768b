"""Training: each objective learns, a NaN stops the job, and a killed epoch resumes to the same weights."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from difflab import DifflabError
from difflab.checkpoint import load_checkpoint
from difflab.schedule import NoiseSchedule
from difflab.train import initial_checkpoint, lr_gamma, make_optimizer, train_one_epoch
from difflab.train_step import draw_step_noise, step_loss

from conftest import ROOT, subprocess_env

DDPM = {"num_timesteps": 300, "beta_start": 1e-4, "beta_end": 0.02, "hidden": 8, "batch_size": 32, "epochs": 2,
        "lr": 1e-3, "lr_decay_total": 0.1, "p_uncond": 0.1, "ema_decay": 0.9, "eval_epochs": [1, 2], "seed": 7,
        "device": "cpu", "train_precision": "fp32", "compile": False, "cuda_graphs": True}
DENOISER = {"sigma": 0.5, "hidden": 8, "batch_size": 32, "epochs": 2, "lr": 1e-3, "grid_epochs": [1], "seed": 7, "device": "cpu",
            "train_precision": "fp32", "compile": False, "cuda_graphs": True}


def fake_digits(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    labels = torch.randint(0, 10, (n,), generator=g)
    for i, c in enumerate(labels.tolist()):
        x[i, 0, 4 + c: 10 + c, 6:22] = 1.0  # a bar whose height encodes the class
    return x, labels


def loss_on_fixed_batch(kind, model, x, labels, schedule):
    draws = draw_step_noise(kind, x.shape[0], schedule.num_timesteps, torch.Generator().manual_seed(123), x.device)
    return step_loss(kind, model, x, draws, schedule, 0.5, labels if kind == "class" else None, 0.1)


@pytest.mark.parametrize("kind", ["denoiser", "time", "class"])
def test_optimisation_steps_lower_the_loss_on_a_fixed_batch(kind):
    settings = DENOISER if kind == "denoiser" else DDPM
    ckpt = initial_checkpoint(kind, settings, seed=7)
    from difflab.models import build_model

    model = build_model(ckpt.architecture, 8)
    model.load_state_dict(ckpt.model)
    optimizer, _ = make_optimizer(model, kind, settings)
    schedule = NoiseSchedule.linear(1e-4, 0.02, 300)
    x, labels = fake_digits()
    before = loss_on_fixed_batch(kind, model, x, labels, schedule).item()
    for _ in range(5):
        loss = loss_on_fixed_batch(kind, model, x, labels, schedule)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss_on_fixed_batch(kind, model, x, labels, schedule).item() < before


def test_learning_rate_decays_tenfold_over_training():
    ckpt = initial_checkpoint("class", DDPM, seed=7)
    x, labels = fake_digits(32)
    for _ in range(DDPM["epochs"]):
        ckpt = train_one_epoch(ckpt, x, labels, torch.device("cpu"), show_progress=False)
    assert lr_gamma(DDPM) == pytest.approx(0.1 ** 0.5)
    assert ckpt.optimizer["param_groups"][0]["lr"] == pytest.approx(DDPM["lr"] * 0.1)
    assert len(ckpt.losses) == 2 * ckpt.steps_per_epoch == 2


def test_nan_loss_stops_with_epoch_and_step():
    ckpt = initial_checkpoint("time", DDPM, seed=7)
    x, labels = fake_digits(64)
    x[40] = float("nan")  # lands in some batch of epoch 1
    with pytest.raises(DifflabError, match=r"loss is nan at epoch 1, step \d+/2"):
        train_one_epoch(ckpt, x, labels, torch.device("cpu"), show_progress=False)


def test_ema_follows_its_recursion_across_saved_and_reloaded_epochs(tmp_path):
    """One step per epoch (32 images, batch 32): the raw weights W_k after each step are the checkpoints' `model`,
    and the stored average must equal E_1 = W_1, E_k = d E_(k-1) + (1 - d) W_k, written out here, for every
    parameter and BatchNorm running statistic, with every epoch resumed from its checkpoint file."""
    from difflab.checkpoint import load_unet_checkpoint, save_checkpoint

    settings = {**DDPM, "batch_size": 32, "epochs": 4, "ema_decay": 0.7}
    d = settings["ema_decay"]
    x, labels = fake_digits(32)
    ckpt = initial_checkpoint("time", settings, seed=7)
    assert int(ckpt.ema_state["n_averaged"]) == 0
    expected = None
    for epoch in range(1, 5):
        ckpt = train_one_epoch(ckpt, x, labels, torch.device("cpu"), show_progress=False)
        save_checkpoint(tmp_path / f"epoch_{epoch}.pt", ckpt)
        ckpt = load_unet_checkpoint(tmp_path / f"epoch_{epoch}.pt")
        raw = {k: v.double() for k, v in ckpt.model.items() if v.is_floating_point()}
        expected = raw if expected is None else {k: d * expected[k] + (1 - d) * raw[k] for k in raw}
        averaged = ckpt.weights("ema")
        assert int(ckpt.ema_state["n_averaged"]) == epoch
        for name, value in expected.items():
            assert torch.allclose(averaged[name].double(), value, rtol=1e-5, atol=1e-6), (epoch, name)
    assert any("running_mean" in k for k in expected)  # BatchNorm statistics are averaged too
    assert not all(torch.allclose(averaged[k], ckpt.model[k]) for k in raw)


def test_ema_leaves_the_raw_weights_unchanged():
    """The average reads the weights and draws no random numbers: any decay gives the same raw weights."""
    x, labels = fake_digits(64)
    runs = [train_one_epoch(initial_checkpoint("class", {**DDPM, "ema_decay": d}, seed=7), x, labels,
                            torch.device("cpu"), show_progress=False) for d in (0.5, 0.99)]
    assert all(torch.equal(runs[0].model[k], runs[1].model[k]) for k in runs[0].model)
    assert not all(torch.equal(runs[0].ema_state[k], runs[1].ema_state[k]) for k in runs[0].ema_state if k != "n_averaged")


def test_a_ddpm_checkpoint_without_ema_is_refused_for_training():
    import dataclasses

    old = dataclasses.replace(initial_checkpoint("time", DDPM, seed=7), ema_state=None)
    x, labels = fake_digits(32)
    with pytest.raises(DifflabError, match="holds no EMA weights.*delete results/models/time/chain"):
        train_one_epoch(old, x, labels, torch.device("cpu"), show_progress=False)


def run_train(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "difflab", "train", *args], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.e2e
def test_killed_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, mnist_npz):
    settings = {**{k: v for k, v in DDPM.items() if k != "eval_epochs"}, "hidden": 8, "batch_size": 64, "train_subset": 4096}
    s = json.dumps(settings)
    init = tmp_path / "epoch_0.pt"
    assert run_train(["--model", "class", "--epoch", "0", "--settings", s, "--out", str(init)]).wait() == 0
    epoch1 = ["--model", "class", "--epoch", "1", "--previous", str(init), "--data", str(mnist_npz), "--settings", s]

    straight = tmp_path / "straight.pt"
    assert run_train([*epoch1, "--out", str(straight)]).wait() == 0

    killed = tmp_path / "killed.pt"
    proc = run_train([*epoch1, "--out", str(killed)])
    seen = ""
    while "%|" not in seen and proc.poll() is None:  # the progress bar appears once training has started
        seen += proc.stdout.read(1)
    assert proc.poll() is None, "the epoch finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists(), "a killed job must not leave a checkpoint behind"

    assert run_train([*epoch1, "--out", str(killed)]).wait() == 0
    a, b = load_checkpoint(straight), load_checkpoint(killed)
    assert a["losses"] == b["losses"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert a["ema_state"].keys() == b["ema_state"].keys() and int(a["ema_state"]["n_averaged"]) == len(a["losses"])
    for name in a["ema_state"]:  # the EMA weights resume bit for bit too, and differ from the raw weights
        assert torch.equal(a["ema_state"][name], b["ema_state"][name]), name
    assert not all(torch.equal(a["ema_state"][f"module.{k}"], v) for k, v in a["model"].items())
