"""Part A 1.9's low-pass sigma sweep: the selection rule, the kernel rule, and the sweep's CSV, facts and figure on a
tiny random class-conditioned UNet and classifier (the fixtures of test_part_a_experiments), and how the 1.9 jobs
read the sigma it selects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difflab.edit import algorithms as A
from difflab.experiments.part_a.illusions import kernel_follows_sigma, select_sigma
import test_part_a_experiments as part_a
from test_part_a_experiments import metrics, run

lab, mnist_hashes = part_a.lab, part_a.mnist_hashes  # the Part A lab's fixtures, shared

from difflab.cli import main


# --- the selection rule -------------------------------------------------------------------------------------


def test_the_highest_mean_success_wins():
    assert select_sigma([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.6, 0.5], 2.0) == 2


def test_ties_go_to_the_sigma_nearest_the_writeups_then_the_smaller():
    assert select_sigma([1.0, 2.0, 3.0, 6.0], [0.5, 0.2, 0.5, 0.5], 2.0) in (0, 2)
    assert select_sigma([1.0, 2.0, 3.0, 6.0], [0.5, 0.2, 0.5, 0.5], 2.0) == 0  # 1 and 3 equally near 2: the smaller
    assert select_sigma([1.0, 2.5, 4.0, 6.0], [0.5, 0.2, 0.5, 0.5], 2.0) == 0  # 1 is nearer 2 than 4
    assert select_sigma([1.0, 2.0, 4.0], [0.5, 0.5, 0.5], 2.0) == 1  # the writeup's own sigma, when it ties
    assert select_sigma([1.0, 2.0, 5.0], [0.3, 1 / 3, 0.1 + 0.1 + 2 / 15], 4.0) == 2  # equal up to rounding: a tie


def test_selection_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="2 sigmas but 1 success rates"):
        select_sigma([1.0, 2.0], [0.5], 2.0)
    with pytest.raises(ValueError):
        select_sigma([], [], 2.0)


# --- the kernel rule ----------------------------------------------------------------------------------------


def test_the_writeups_sigma_keeps_the_writeups_filter():
    assert kernel_follows_sigma(2.0, 33, 2.0, 28, 64) == A.scale_blur_to_size(33, 2.0, 28, 64) == (15, 0.875)
    assert kernel_follows_sigma(2.0, 33, 2.0, 64, 64) == (33, 2.0)


@pytest.mark.parametrize("sigma", [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0])
def test_the_kernel_is_the_odd_size_nearest_the_writeups_ratio(sigma):
    k, scaled = kernel_follows_sigma(sigma, 33, 2.0, 28, 64)
    assert scaled == pytest.approx(sigma * 28 / 64)
    assert k % 2 == 1 and k >= 3
    assert k == 3 or abs(k - 16.5 * scaled) <= 1  # the nearest odd integer to 16.5 sigma'


def test_the_kernel_grows_with_sigma():
    sizes = [kernel_follows_sigma(s, 33, 2.0, 28, 64)[0] for s in np.linspace(0.1, 6.0, 60)]
    assert sizes == sorted(sizes) and sizes[0] == 3 and sizes[-1] == 43


# --- the sweep job ------------------------------------------------------------------------------------------

SWEEP = dict(hybrid_sigmas=[1.0, 3.0], hybrids=[["a 0", "a 1"], ["a 8", "a 3"]])


def test_the_sweep_writes_a_rate_per_pair_and_sigma_and_selects_by_the_rule(lab, mnist_hashes):
    rc, out = run(lab, "hybrid_sweep", **SWEEP)
    assert rc == 0
    with np.load(out / "result.npz") as r:
        sigmas, rates, mean_both, best = r["sigmas"], r["rates"], r["mean_both"], int(r["best"])
        kernels, used = r["kernel_sizes"], float(r["used_sigma"])
    n = lab[1]["part_a"]["illusion_num_seeds"]
    assert list(sigmas) == [1.0, 2.0, 3.0]  # the writeup's 2.0 is always measured
    assert list(kernels) == [kernel_follows_sigma(s, 33, 2.0, 28, 64)[0] for s in (1.0, 2.0, 3.0)]
    assert rates.shape == (3, 2, 3) and np.all(np.isin(np.round(rates * n, 6), np.arange(n + 1)))
    assert np.all(rates[:, :, 2] <= rates[:, :, :2].min(axis=2))
    assert np.allclose(mean_both, rates[:, :, 2].mean(axis=1))
    assert best == select_sigma([1.0, 2.0, 3.0], list(mean_both), 2.0) and used == sigmas[best]
    table = metrics(lab, "hybrid_sweep")
    assert len(table) == 3 * (2 * 3 + 1) and set(table.n) == {n, 2 * n}
    value = table.set_index(["parameter", "metric"]).value
    assert value[("sigma=3,hybrid=a 8/a 3", "high-pass_rate")] == pytest.approx(rates[2, 1, 1])
    assert value[("sigma=1,hybrid=mean", "both_rate")] == pytest.approx(mean_both[0])
    facts = json.loads((out / "facts.json").read_text())
    assert facts["best_sigma"] == f"{sigmas[best]:g}" and facts["writeup_sigma"] == "2"
    assert facts["writeup_success"] == f"{100 * mean_both[1]:.0f}%" and facts["best_success"] == f"{100 * mean_both[best]:.0f}%"
    assert facts["sigmas"] == "1, 2, 3" and facts["scaled_sigmas"] == "0.438, 0.875, 1.31"
    figures = lab[0] / "figures" / "hybrid_sweep"
    assert main(["parta", "figure", "hybrid_sweep", "--result-dir", str(out), "--out-dir", str(figures)]) == 0
    md = (figures / "hybrid_sweep.md").read_text().splitlines()
    cells = [c.strip() for c in md[3].strip().strip("|").split("|")]
    assert len(md) == 2 + 3 and cells == ["2", "0.875", "15", *(f"{100 * v:.0f}%" for v in rates[1, :, 2]),
                                          f"{100 * mean_both[1]:.0f}%"]
    assert (figures / "hybrid_sweep.png").is_file()


def test_every_sigma_starts_from_the_same_draws(lab, mnist_hashes):
    """Common random numbers: a sigma's rates do not depend on which other sigmas are swept."""
    run(lab, "hybrid_sweep", **SWEEP)
    with np.load(lab[0] / "experiments" / "hybrid_sweep" / "result.npz") as r:
        wide = r["rates"][1]
    rc, out = run(lab, "hybrid_sweep", **{**SWEEP, "hybrid_sigmas": [2.0]})
    with np.load(out / "result.npz") as r:
        assert rc == 0 and list(r["sigmas"]) == [2.0] and np.array_equal(r["rates"][0], wide)


def test_the_1_9_jobs_use_the_sweeps_best_sigma_or_the_configured_one(lab, mnist_hashes, capsys):
    rc, out = run(lab, "hybrid_sweep")
    best = json.loads((out / "facts.json").read_text())["best_sigma"]
    for name in ("hybrids", "illusions"):
        rc, job_out = run(lab, name)
        facts = json.loads((job_out / "facts.json").read_text())
        assert rc == 0 and facts["used_sigma" if name == "hybrids" else "hybrid_sigma"] == best
    rc, job_out = run(lab, "hybrids", hybrid_sigma_choice=3.5)  # a number: no sweep needed
    facts = json.loads((job_out / "facts.json").read_text())
    assert rc == 0 and facts["used_sigma"] == "3.5" and facts["scaled_kernel_size"] == 25
    assert facts["sigma_reason"] == "set by part_a.hybrid_sigma_choice"


def test_a_stale_or_missing_sweep_is_a_one_line_error(lab, mnist_hashes, capsys):
    from test_part_a_experiments import settings_text

    assert run(lab, "hybrid_sweep")[0] == 0
    capsys.readouterr()
    rc, _ = run(lab, "hybrids", hybrid_sigmas=[1.5])  # the sweep on file measured the config's other sigmas
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "rerun the part_a hybrid_sweep job" in err[-1] and err[-1].startswith("difflab parta: error:")
    tmp = lab[0]
    argv = ["parta", "run", "hybrids", "--settings", settings_text(lab, "hybrids"), "--checkpoint", str(tmp / "epoch_2.pt"),
            "--data", str(tmp / "mnist.npz"), "--classifier", str(tmp / "classifier.pt"), "--out-dir", str(tmp / "x"),
            "--metrics-out", str(tmp / "x.csv")]
    assert main(argv) == 2
    assert "'part_a.hybrid_sigma_choice' = 'best' needs the part_a hybrid_sweep result" in capsys.readouterr().err
