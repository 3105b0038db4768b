"""Checkpoints: checksummed, atomic, and a corrupt one is detected, set aside and recomputed, never used."""

import subprocess

import pytest
import torch

from conftest import ROOT, snakemake_cmd, subprocess_env
from difflab import DifflabError
from difflab.checkpoint import load_checkpoint, load_model, save_checkpoint
from difflab.models import build_model
from difflab.io import quarantine_corrupt, split_checksum, with_checksum


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
    save_checkpoint(path, {"architecture": architecture, "hidden": hidden, "model": build_model("class", 8).state_dict()})
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
