"""Checkpoints: checksummed, atomic, and a corrupt one is detected, set aside and recomputed, never used."""

import io
import subprocess

import pytest
import torch

from conftest import ROOT, snakemake_cmd, subprocess_env
from difflab import DifflabError
from difflab.checkpoint import Checkpoint, load_checkpoint, load_model, load_unet_checkpoint, save_checkpoint
from difflab.models import build_model
from difflab.io import quarantine_corrupt, split_checksum, with_checksum
from difflab.schedule import NoiseSchedule
from helpers.factories import unet_payload


def test_round_trip_keeps_tensors_exactly(tmp_path):
    payload = {"model": {"w": torch.randn(5, 3)}, "epoch": 2, "losses": [0.5, 0.25]}
    save_checkpoint(tmp_path / "a.pt", payload)
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(loaded["model"]["w"], payload["model"]["w"]) and loaded["losses"] == [0.5, 0.25]
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left behind


def damaged(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x01
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "trailer cut": data[:-10],
        "one bit flipped": bytes(flipped),
        "plain torch.save": data[: data.rindex(b"\nDIFFLAB-SHA256:")],
    }


def test_every_kind_of_damage_is_a_one_line_error_naming_the_file(tmp_path):
    save_checkpoint(tmp_path / "good.pt", {"w": torch.arange(1000)})
    for name, data in damaged((tmp_path / "good.pt").read_bytes()).items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        path.write_bytes(data)
        with pytest.raises(DifflabError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert message.startswith(f"{path}: unusable checkpoint") and "\n" not in message, name
        assert "recomputes" in message


@pytest.mark.parametrize("architecture,hidden", [("class", 16), ("time", 8)])
def test_weights_of_another_architecture_or_width_name_the_mismatch(tmp_path, architecture, hidden):
    path = tmp_path / "epoch_1.pt"
    save_checkpoint(path, unet_payload(architecture, build_model("class", 8).state_dict(), hidden=hidden, num_timesteps=300,
                                       beta_start=1e-4, beta_end=0.02, p_uncond=0.0))
    with pytest.raises(DifflabError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: weights do not fit architecture '{architecture}' with width {hidden}: ")
    assert "\n" not in message


def test_checksum_trailer_detects_a_single_changed_byte():
    data = with_checksum(b"payload bytes")
    assert split_checksum(data) == (b"payload bytes", None)
    assert split_checksum(data.replace(b"payload", b"Payload"))[1] == "checksum mismatch: corrupted"
    assert "truncated" in split_checksum(data[:-1])[1]


def test_quarantine_moves_aside_only_the_damaged_files(tmp_path):
    save_checkpoint(tmp_path / "good.pt", {"w": torch.ones(3)})
    bad = tmp_path / "bad.pt"
    bad.write_bytes((tmp_path / "good.pt").read_bytes()[:-5])
    moved = quarantine_corrupt([tmp_path / "good.pt", bad])
    assert [(p.name, "truncated" in why) for p, why in moved] == [("bad.pt", True)]
    assert not bad.exists() and (tmp_path / "bad.pt.corrupt").exists()
    assert load_checkpoint(tmp_path / "good.pt")["w"].sum() == 3


@pytest.mark.parametrize("damage", ["truncated", "one bit flipped"])
def test_workflow_sets_a_corrupt_checkpoint_aside_and_plans_to_recompute_it(tmp_path, damage):
    """A real Snakemake dry run over the repository's workflow, with a damaged kept checkpoint in results/."""
    work = tmp_path / "difflab"
    work.mkdir()
    for name in ("Snakefile", "rules", "config", "profiles", "report"):
        src = ROOT / name
        subprocess.run(["cp", "-r", str(src), str(work / name)], check=True)
    kept = work / "results" / "models" / "denoiser" / "epoch_1.pt"
    kept.parent.mkdir(parents=True)
    save_checkpoint(kept, {"w": torch.arange(100)})
    kept.write_bytes(damaged(kept.read_bytes())[damage])
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/smoke", str(kept.relative_to(work))),
                            cwd=work, capture_output=True, text=True, env=subprocess_env())
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert f"difflab: {kept.relative_to(work)}: " in out and "it will be recomputed" in out
    assert not kept.exists() and kept.with_name("epoch_1.pt.corrupt").exists()
    assert "rule keep_checkpoint" in out and "rule train_epoch" in out


DDPM_SETTINGS = {"num_timesteps": 300, "beta_start": 1e-4, "beta_end": 0.02, "hidden": 8, "batch_size": 32, "epochs": 2,
                 "lr": 1e-3, "lr_decay_total": 0.1, "p_uncond": 0.1, "ema_decay": 0.9, "seed": 7, "device": "cpu",
                 "train_precision": "fp32", "compile": False, "cuda_graphs": True}
DENOISER_SETTINGS = {"sigma": 0.5, "hidden": 8, "batch_size": 32, "epochs": 2, "lr": 1e-3, "seed": 7, "device": "cpu",
                     "train_precision": "fp32", "compile": False, "cuda_graphs": True}
LEGACY_ORDER = ["architecture", "kind", "hidden", "epoch", "model", "optimizer", "scheduler", "losses", "steps_per_epoch",
                "epoch_seconds", "images_per_second", "settings", "seed"]


def pickled(payload) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["denoiser", "time", "class"])
def test_typed_checkpoint_round_trips_to_the_same_payload_bytes(tmp_path, kind):
    from difflab.train import initial_checkpoint

    settings = DENOISER_SETTINGS if kind == "denoiser" else DDPM_SETTINGS
    ckpt = initial_checkpoint(kind, settings, seed=7)
    assert isinstance(ckpt, Checkpoint)
    payload = ckpt.to_payload()
    extra = ["sigma"] if kind == "denoiser" else ["num_timesteps", "beta_start", "beta_end", "p_uncond", "ema_state"]
    assert list(payload) == LEGACY_ORDER + extra  # the dict train.py wrote before the dataclass, key for key (+ EMA)
    legacy = {key: getattr(ckpt, key) for key in LEGACY_ORDER + extra}
    assert pickled(payload) == pickled(legacy)
    assert Checkpoint.from_payload(payload, "x.pt") == ckpt
    save_checkpoint(tmp_path / "a.pt", ckpt)
    loaded = load_unet_checkpoint(tmp_path / "a.pt")
    assert loaded.to_payload().keys() == payload.keys() and loaded.seed == 7 and loaded.epoch == 0
    assert all(torch.equal(loaded.model[k], v) for k, v in ckpt.model.items())
    model, typed = load_model(tmp_path / "a.pt")
    assert isinstance(typed, Checkpoint) and typed.kind == kind and not model.training


def test_ddpm_checkpoint_builds_its_linear_schedule():
    from difflab.train import initial_checkpoint

    schedule = initial_checkpoint("time", DDPM_SETTINGS, seed=7).schedule()
    assert torch.equal(schedule.alphas_cumprod, NoiseSchedule.linear(1e-4, 0.02, 300).alphas_cumprod)
    with pytest.raises(DifflabError, match="has no noise schedule"):
        initial_checkpoint("denoiser", DENOISER_SETTINGS, seed=7).schedule()


@pytest.mark.parametrize("key", ["kind", "model", "optimizer", "seed", "beta_end", "p_uncond"])
def test_a_checkpoint_without_a_key_names_the_file_and_the_key(tmp_path, key):
    path = tmp_path / "epoch_1.pt"
    payload = unet_payload("class", build_model("class", 8).state_dict(), num_timesteps=300, beta_start=1e-4,
                           beta_end=0.02, p_uncond=0.1)
    del payload[key]
    save_checkpoint(path, payload)
    for load in (load_unet_checkpoint, load_model):
        with pytest.raises(DifflabError) as info:
            load(path)
        assert str(info.value) == f"{path}: 'class' checkpoint lacks the key {key!r}"


def test_a_denoiser_checkpoint_needs_its_sigma_and_the_classifier_is_no_unet(tmp_path):
    payload = unet_payload("unconditional", build_model("unconditional", 8).state_dict())
    with pytest.raises(DifflabError, match=r"^x\.pt: 'unconditional' checkpoint lacks the key 'sigma'$"):
        Checkpoint.from_payload(payload, "x.pt")
    assert Checkpoint.from_payload({**payload, "sigma": 0.5}, "x.pt").sigma == 0.5
    save_checkpoint(tmp_path / "c.pt", {"architecture": "classifier", "width": 4, "model": {}})
    with pytest.raises(DifflabError, match="holds the MNIST classifier; expected a UNet checkpoint"):
        load_unet_checkpoint(tmp_path / "c.pt")


def test_ema_weights_are_the_averaged_model_without_its_prefix_and_old_checkpoints_say_so(tmp_path):
    from helpers import factories as fx

    with_ema, without = tmp_path / "ema.pt", tmp_path / "old.pt"
    payload = fx.make_checkpoint(with_ema, "class", 2, ema_seed=99)
    fx.make_checkpoint(without, "class", 2)
    ckpt = load_unet_checkpoint(with_ema)
    averaged = ckpt.weights("ema")
    assert averaged.keys() == ckpt.model.keys()  # 'module.' stripped, 'n_averaged' left out
    assert all(torch.equal(averaged[k], payload["ema_state"][f"module.{k}"]) for k in averaged)
    assert ckpt.weights("raw") is ckpt.model
    model, _ = load_model(with_ema, weights="ema")
    assert all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())
    raw_model, _ = load_model(with_ema)
    assert not all(torch.equal(v, averaged[k]) for k, v in raw_model.state_dict().items())
    with pytest.raises(DifflabError, match=r"old\.pt: the 'class' checkpoint of epoch 2 holds no EMA weights"):
        load_model(without, weights="ema")
    with pytest.raises(DifflabError, match="expected one of raw, ema"):
        ckpt.weights("swa")
