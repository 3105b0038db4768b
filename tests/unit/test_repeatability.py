"""python -m difflab.repeatability: its comparisons, and on CPU two real runs are bit-identical."""

import json

import torch

from difflab.repeatability import cli, difference, state_difference


def test_difference_reports_bit_identity_and_the_largest_gap():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert difference(a, a.clone()) == {"bitwise_equal": True, "max_abs_diff": 0.0}
    b = a.clone()
    b[1] += 0.25
    assert difference(a, b) == {"bitwise_equal": False, "max_abs_diff": 0.25}
    assert state_difference({"w": a, "v": b}, {"w": a, "v": a})["max_abs_diff"] == 0.25


def test_two_cpu_runs_of_training_and_sampling_are_bit_identical(tmp_path, mnist_npz, one_thread):
    out = tmp_path / "repeatability.json"
    cli(["--data", str(mnist_npz), "--device", "cpu", "--hidden", "4", "--train-images", "256", "--samples", "4",
         "--out", str(out)])
    result = json.loads(out.read_text())
    assert [r["bitwise_equal"] for r in result["results"]] == [True, True]
    assert result["results"][0]["losses"]["bitwise_equal"] and result["train_images"] == 256
