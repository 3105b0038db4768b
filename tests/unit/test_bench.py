"""`make bench` in its CI size on the CPU: it runs, writes its JSON and prints the ratios. On a CPU the configured
performance path is the plain one, so its equality checks must come out exact (the numbers themselves are
measured, never asserted)."""

import json

from difflab import bench


def test_bench_runs_on_the_cpu_and_both_paths_compute_the_same(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.cli(["--device", "cpu", "--hidden", "4", "--repeats", "1", "--train-steps", "6", "--out", str(out)])
    result = json.loads(out.read_text())
    rows = {row["comparison"]: row for row in result["results"]}
    assert result["device"].startswith("CPU")
    assert all(row["speedup"] > 0 for row in rows.values())
    training = rows["training (class DDPM, Algorithm B.3)"]
    assert training["candidate"] == "fp32 eager" and training["loss_relative_difference"] == 0.0
    sampling = next(row for name, row in rows.items() if name.startswith("CFG sampling"))
    assert sampling["max_abs_pixel_difference"] == 0.0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "same computation? training" in printed
