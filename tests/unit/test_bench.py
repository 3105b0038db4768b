"""`make bench` in its CI size on the CPU: it runs, writes its JSON and prints the ratios. With both paths in fp32
the configured path differs from the plain one only in its sampling batch, which the samples do not depend on, so
its equality checks must come out exact; the default (bf16 where the CPU has it) stays within bf16 rounding. The
numbers themselves are measured, never asserted."""

import json

import pytest
import torch

from difflab import bench
from difflab.performance import native_bf16

CI_SIZE = ["--device", "cpu", "--hidden", "4", "--repeats", "1", "--train-steps", "6"]


def run_bench(tmp_path, *flags) -> tuple[dict, dict]:
    """The bench at CI size with `flags`: its (training row, CFG sampling row)."""
    out = tmp_path / "bench.json"
    bench.cli([*CI_SIZE, "--out", str(out), *flags])
    result = json.loads(out.read_text())
    assert result["device"].startswith("CPU")
    assert all(row["speedup"] > 0 for row in result["results"])
    rows = {row["comparison"]: row for row in result["results"]}
    return rows["training (class DDPM, Algorithm B.3)"], next(r for n, r in rows.items() if n.startswith("CFG sampling"))


def test_bench_in_fp32_computes_exactly_what_the_plain_path_does(tmp_path, capsys):
    training, sampling = run_bench(tmp_path, "--train-precision", "fp32", "--sample-precision", "fp32")
    assert training["candidate"] == "fp32 eager" and training["loss_relative_difference"] == 0.0
    assert sampling["candidate"] == "fp32 eager, batch 64" and sampling["max_abs_pixel_difference"] == 0.0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "same computation? training" in printed


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU has no bf16 instructions: auto is fp32")
def test_bench_default_on_a_bf16_cpu_runs_bf16_within_its_rounding(tmp_path):
    training, sampling = run_bench(tmp_path)
    assert training["candidate"] == "bf16 eager" and sampling["candidate"].startswith("bf16 eager")
    assert 0 < training["loss_relative_difference"] < 0.05
    assert 0 < sampling["max_abs_pixel_difference"] < 0.05
