"""Timestep spacing of chains from pure noise: the leading (spec) and trailing (from T - 1) lists, the Part A
experiments that use them, and the measurement in difflab.experiments.part_a.spacing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.experiments.part_a.spacing import measure_spacing
from difflab.metrics.classifier import init_classifier
from difflab.schedule import alphas_cumprod_from_betas, linear_betas, trailing_timesteps

ROOT = Path(__file__).resolve().parents[2]


# --- the lists ----------------------------------------------------------------------------------------------


def test_closed_form_at_t300_and_the_spec_list_at_t1000():
    leading = A.denoising_timesteps(300, A.stride_for_steps(300, 10))
    trailing = A.denoising_timesteps(300, A.stride_for_steps(300, 10), spacing="trailing")
    assert leading == [270, 240, 210, 180, 150, 120, 90, 60, 30, 0, -1]
    assert trailing == [299, 269, 239, 209, 179, 149, 119, 89, 59, 29, -1]
    assert A.denoising_timesteps(1000, 30) == list(range(990, -1, -30)) + [-1]  # spec A.1.4
    assert trailing_timesteps(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]  # diffusers docs example
    assert trailing_timesteps(300, 8)[1] == 261  # 300 - 37.5 = 262.5 rounds half to even, as numpy.round


@given(T=st.integers(1, 1200), data=st.data())
def test_both_spacings_make_the_same_number_of_calls_and_descend_to_the_clean_image(T, data):
    n = data.draw(st.integers(1, T))
    stride = A.stride_for_steps(T, n)
    leading = A.denoising_timesteps(T, stride)
    trailing = A.denoising_timesteps(T, stride, spacing="trailing")
    assert len(leading) == len(trailing) <= n + 1
    for ts in (leading, trailing):
        assert all(a > b for a, b in zip(ts, ts[1:])) and ts[-1] == -1 and ts[-2] >= 0
    N = len(trailing) - 1
    assert leading[-2] == 0 and leading[0] > T - 1 - stride
    assert trailing[0] == T - 1 and trailing[-2] == round(T / N) - 1
    assert all(abs(t + 1 - (T - i * T / N)) <= 0.5 + 1e-9 for i, t in enumerate(trailing[:-1]))  # nearest to T - iT/N


def test_bad_spacings_are_refused():
    with pytest.raises(ValueError, match="spacing"):
        A.denoising_timesteps(300, 10, spacing="linspace")
    with pytest.raises(ValueError, match="trailing"):
        A.denoising_timesteps(300, 10, start=100, spacing="trailing")
    with pytest.raises(ValueError, match="1..300"):
        trailing_timesteps(300, 301)


# --- the Part A chains from pure noise ----------------------------------------------------------------------


class RecordingDenoiser:
    """An MNIST-shaped Denoiser with T = 300 whose noise estimate is a fixed per-digit pattern; records every t."""

    image_shape = (1, 28, 28)
    value_range = (0.0, 1.0)
    device = torch.device("cpu")
    epoch = 1

    def __init__(self, T: int = 300):
        self.alphas_cumprod = alphas_cumprod_from_betas(linear_betas(1e-4, 0.02, T))
        self.patterns = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        self.calls: list[int] = []

    def predict_noise(self, x_t, t, cond):
        self.calls.append(t)
        return 0.5 * x_t + torch.einsum("nc,chw->nhw", cond, self.patterns[:, 0]).unsqueeze(1), None

    def encode(self, prompt):
        return torch.nn.functional.one_hot(torch.tensor([int(prompt.split()[-1])]), 10).float()

    def null_condition(self, batch):
        return torch.zeros(batch, 10)


def job_settings(job: str, **values):
    """Settings of Part A job `job` from config/config.yaml, with `values` replaced."""
    import json

    from difflab.config import load_config
    from difflab.settings import from_json, settings_dict

    config = load_config(ROOT / "config" / "config.yaml")
    return from_json(job, json.dumps({**settings_dict(config, job), **values}))


@pytest.mark.parametrize("spacing,first", [("leading", 290), ("trailing", 299)])
def test_every_chain_from_pure_noise_uses_the_configured_spacing(monkeypatch, spacing, first):
    from difflab.edit import algorithms as A
    from difflab.experiments.part_a import illusions, sampling
    from difflab.experiments.part_a.context import Context

    starts = []

    def record(x, timesteps, schedule, noise_fn, generator, variance="auto", i_start=0, *args, **kwargs):
        starts.append((timesteps[i_start], len(timesteps) - 1))
        return x

    monkeypatch.setattr(A, "reverse", record)  # the one reverse loop every chain runs through
    ctx = Context("cfg", RecordingDenoiser(), 180, "", "", _classifier=init_classifier(4, 0))
    common = dict(timestep_spacing=spacing, stride=10, num_samples=2)
    sampling.samples(ctx, job_settings("part_a.samples", **common))
    sampling.cfg(ctx, job_settings("part_a.cfg", **common))
    illusions.anagrams(ctx, job_settings("part_a.anagrams", **common, anagrams=[["a 6", "a 9"]]))
    illusions.hybrids(ctx, job_settings("part_a.hybrids", **common, hybrids=[["a 0", "a 1"]], hybrid_sigma_choice=2.0))
    assert starts == [(first, 30)] * 4
    starts.clear()
    sampling.sampling(ctx, job_settings("part_a.sampling", timestep_spacing=spacing, num_samples=2,
                                        sample_step_counts=[10, 30], sample_prompts=["a 3"]))
    assert starts == [(270 if spacing == "leading" else 299, 10), (first, 30)]


# --- the measurement ----------------------------------------------------------------------------------------


def measure(den, steps, spacings=("leading", "trailing"), seed=0):
    real = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return measure_spacing(den, init_classifier(4, 0), real, steps, 16, list(spacings), 3.0, seed)


def test_measurement_rows_are_tidy_and_start_each_spacing_where_it_should():
    den = RecordingDenoiser(T=40)
    rows = measure(den, [4])
    assert [(r["parameter"], r["metric"]) for r in rows] == [
        (f"spacing={spacing},steps=4", metric) for spacing in ("leading", "trailing")
        for metric in ("class_accuracy", "fid", "kid", "kid_std")]
    assert {(r["experiment"], r["model"], r["epoch"], r["n"], r["extractor"]) for r in rows} == {
        ("part_a_spacing", "class", 1, 16, "mnist-classifier(width=4)")}
    assert all(math.isfinite(r["value"]) for r in rows) and all(0 <= r["value"] <= 1 for r in rows[::4])
    assert den.calls == [30, 20, 10, 0, 39, 29, 19, 9]  # stride 10: leading from 30, trailing from T - 1 = 39
    assert measure(RecordingDenoiser(T=40), [4]) == rows  # the seed fixes everything


def test_both_spacings_share_digits_initial_noise_and_step_noise():
    rows = measure(RecordingDenoiser(T=12), [12])  # stride 1: both lists are 11, 10, ..., 0
    assert [r["value"] for r in rows[:4]] == [r["value"] for r in rows[4:]]
    other = measure(RecordingDenoiser(T=12), [12], seed=1)
    assert [r["value"] for r in other] != [r["value"] for r in rows]


def test_measurement_refuses_bad_requests():
    den = RecordingDenoiser(T=40)
    with pytest.raises(DifflabError, match="spacings"):
        measure(den, [4], spacings=["middle"])
    with pytest.raises(DifflabError, match=r"1\.\.40"):
        measure(den, [41])
    with pytest.raises(DifflabError, match="equal n"):
        measure_spacing(den, init_classifier(4, 0), torch.rand(8, 1, 28, 28), [4], 16, ["leading"], 3.0, 0)
