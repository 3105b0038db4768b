"""Property test: every combination of the limit keys that config validation accepts runs in the code, and every
one it rejects for a limit fails there (Hypothesis over the schema's ranges).

The keys: part_a.hybrid_kernel_size / hybrid_sigma / hybrid_reference_size / hybrid_sigmas / hybrid_sigma_choice
(the scaled low- and high-pass of A.1.9 and of its sigma sweep), part_a.blur_sigmas (A.1.2's blur), part_a.stride / i_start / sdedit_i_starts with
part_b.ddpm.num_timesteps (indices into the strided timesteps of A.1.4, A.1.7), part_b.ddpm.beta_start /
beta_end / num_timesteps (a reverse chain over the ends of the schedule) and part_b.denoiser.noise_levels with the
DDPM schedule (the OOD table's one-step DDPM). Each code path below is the one a job runs, on the
MNIST backend's 28 x 28 images.
"""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difflab import DifflabError
from difflab.config import load_config, validate_config
from difflab.edit import algorithms as A
from difflab.edit.backends.mnist import MnistDenoiser
from difflab.schedule import NoiseSchedule, sigma_to_timestep

from conftest import ROOT

SCHEMA = ROOT / "config" / "schema.yaml"
BASE = load_config(ROOT / "config" / "config.yaml")
SIDE = MnistDenoiser.image_shape[-1]

# Positive numbers as the schema allows them (exclusiveMinimum 0, no maximum), finite (the config rejects .nan
# and .inf), drawn mostly near the sizes that matter and sometimes anywhere, subnormals included.
positive = st.one_of(st.floats(min_value=0, max_value=30, exclude_min=True),
                     st.floats(min_value=0, exclude_min=True, allow_infinity=False))
open_unit = st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True)
index = st.one_of(st.integers(0, 60), st.integers(0, 20000))


class FlatDenoiser:
    """A Denoiser that predicts zero noise, with the configured schedule: enough to run the reverse loop."""

    image_shape = (1, 2, 2)
    device = torch.device("cpu")

    def __init__(self, schedule: NoiseSchedule):
        self.alphas_cumprod = schedule.alphas_cumprod

    def predict_noise(self, x_t, t, cond):
        return torch.zeros_like(x_t), None


def runs(fn) -> bool:
    """Whether the job's code path raises nothing and gives finite values."""
    try:
        out = fn()
    except (DifflabError, ValueError, RuntimeError, OverflowError, IndexError):
        return False
    return not isinstance(out, torch.Tensor) or bool(torch.isfinite(out).all())


def hybrid_runs(a: dict) -> bool:
    """The writeup's filter, then every sigma of the sweep and a numeric choice with the kernel following sigma
    (illusions.kernel_follows_sigma), as the 1.9 jobs build them."""
    from difflab.experiments.part_a.illusions import kernel_follows_sigma

    image = torch.rand(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))

    def apply():
        k, sigma = A.scale_blur_to_size(a["hybrid_kernel_size"], a["hybrid_sigma"], SIDE, a["hybrid_reference_size"])
        return A.lowpass(image, k, sigma) + A.highpass(image, k, sigma)

    def apply_at(sigma_ref: float):
        k, sigma = kernel_follows_sigma(sigma_ref, a["hybrid_kernel_size"], a["hybrid_sigma"], SIDE, a["hybrid_reference_size"])
        return A.lowpass(image, k, sigma) + A.highpass(image, k, sigma)

    choice = [] if a["hybrid_sigma_choice"] == "best" else [a["hybrid_sigma_choice"]]
    return runs(apply) and all(runs(lambda s=s: apply_at(s)) for s in [*a["hybrid_sigmas"], *choice])


def blur_runs(a: dict) -> bool:
    image = torch.rand(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    return all(runs(lambda: A.blur_denoise(image, torch.ones(()), sigma)) for sigma in a["blur_sigmas"])


def i_starts_index(a: dict, schedule: NoiseSchedule) -> bool:
    """The job's own check of i_start and every sdedit_i_starts against the strided list it walks."""
    timesteps = A.denoising_timesteps(schedule.num_timesteps, a["stride"])
    return all(runs(lambda: A.check_i_start(i, timesteps)) for i in [a["i_start"], *a["sdedit_i_starts"]])


def sdedit_runs(a: dict, schedule: NoiseSchedule) -> bool:
    """The longest SDEdit chain of the config (noise to timesteps[i_start], then every step to the clean image)."""
    timesteps = A.denoising_timesteps(schedule.num_timesteps, a["stride"])
    den, x0 = FlatDenoiser(schedule), torch.full((1, 1, 2, 2), 0.5)
    start = min([a["i_start"], *a["sdedit_i_starts"]])
    return runs(lambda: A.sdedit(den, x0, start, timesteps, torch.zeros(1, 10), torch.Generator().manual_seed(0)))


def reverse_chain_runs(schedule: NoiseSchedule) -> bool:
    """A reverse chain from pure noise at t = T - 1 through t = 0 to the clean image (the ends of the schedule)."""
    T = schedule.num_timesteps
    timesteps = [T - 1, 0, -1] if T > 1 else [0, -1]
    generator = torch.Generator().manual_seed(0)
    den = FlatDenoiser(schedule)
    return runs(lambda: A.denoise(den, torch.randn(1, 1, 2, 2, generator=generator), timesteps, 0,
                                  lambda x, t: den.predict_noise(x, t, None), generator))


def noise_levels_representable(levels: list[float], schedule: NoiseSchedule) -> bool:
    """No level is clamped: each is at most the noise level of the last timestep, (1 - abar)/abar = sigma^2."""
    last = float(schedule.alphas_cumprod[-1].double())
    return all(sigma**2 <= (1 - last) / last or sigma_to_timestep(sigma, schedule) < schedule.num_timesteps - 1
               for sigma in levels)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_config_accepts_exactly_what_the_code_runs(data):
    config = copy.deepcopy(BASE)
    a, ddpm = config["part_a"], config["part_b"]["ddpm"]
    a["hybrid_kernel_size"] = data.draw(st.integers(1, 255), "hybrid_kernel_size")
    a["hybrid_sigma"] = data.draw(positive, "hybrid_sigma")
    a["hybrid_reference_size"] = data.draw(st.one_of(st.integers(1, 128), st.integers(1, 10**9)), "hybrid_reference_size")
    a["hybrid_sigmas"] = data.draw(st.lists(positive, min_size=1, max_size=3, unique=True), "hybrid_sigmas")
    a["hybrid_sigma_choice"] = data.draw(st.one_of(st.just("best"), positive), "hybrid_sigma_choice")
    a["blur_sigmas"] = data.draw(st.lists(positive, min_size=1, max_size=3), "blur_sigmas")
    ddpm["num_timesteps"] = data.draw(st.one_of(st.integers(2, 400), st.integers(2, 10000)), "num_timesteps")
    ddpm["beta_start"], ddpm["beta_end"] = sorted(data.draw(st.tuples(open_unit, open_unit), "betas"))
    a["stride"] = data.draw(st.one_of(st.integers(1, 40), st.integers(1, 10**6)), "stride")
    a["i_start"] = data.draw(index, "i_start")
    a["sdedit_i_starts"] = data.draw(st.lists(index, min_size=1, max_size=3), "sdedit_i_starts")
    levels = data.draw(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=3), "noise_levels")
    config["part_b"]["denoiser"]["noise_levels"] = levels

    try:
        validate_config(config, SCHEMA, root=ROOT)
        problems = []
    except DifflabError as exc:
        problems = str(exc).splitlines()
    assert all(line.startswith(("config key ", "config keys ")) for line in problems), problems

    def rejected(*keys: str) -> bool:
        return any(f"'{key}" in line for line in problems for key in keys)

    schedule = NoiseSchedule.linear(ddpm["beta_start"], ddpm["beta_end"], ddpm["num_timesteps"])
    # each limit is rejected exactly when its code path fails
    assert rejected("part_a.hybrid_") != hybrid_runs(a)
    assert rejected("part_a.blur_sigmas") != blur_runs(a)
    assert rejected("part_a.i_start", "part_a.sdedit_i_starts") != i_starts_index(a, schedule)
    schedule_runs = reverse_chain_runs(schedule)
    assert any(line.startswith("config keys 'part_b.ddpm.") for line in problems) != schedule_runs
    if schedule_runs:
        assert rejected("part_b.denoiser.noise_levels") != noise_levels_representable(levels, schedule)
    if not problems:  # and an accepted config runs end to end
        assert sdedit_runs(a, schedule)


def test_part_b_blur_candidates_are_checked_like_part_a():
    """part_b.denoiser.blur_sigmas (the OOD table's blur baseline) goes through the same limit as part_a.blur_sigmas."""
    from difflab.config import validate_config

    config = copy.deepcopy(BASE)
    config["part_b"]["denoiser"]["blur_sigmas"] = [1.0, 9.5]
    with pytest.raises(DifflabError, match=r"config key 'part_b.denoiser.blur_sigmas\[1\]' = 9.5: .*expected sigma <= 9"):
        validate_config(config, SCHEMA, root=ROOT)


def test_the_property_sees_both_outcomes():
    """The oracle above is not vacuous: the spec's settings run, DeepFloyd's 255 px kernel at 64 px does not."""
    a = copy.deepcopy(BASE["part_a"])
    assert hybrid_runs(a) and blur_runs(a)
    assert not hybrid_runs({**a, "hybrid_kernel_size": 255})
    assert not hybrid_runs({**a, "hybrid_sigmas": [2.0, 9.0]}) and not hybrid_runs({**a, "hybrid_sigma_choice": 9.0})
    assert not blur_runs({**a, "blur_sigmas": [9.5]})
    schedule = NoiseSchedule.linear(1e-4, 0.02, 300)
    assert not noise_levels_representable([4.46], schedule) and noise_levels_representable([4.45], schedule)
    assert i_starts_index({**a, "i_start": 29, "sdedit_i_starts": [0]}, schedule)
    assert sdedit_runs({**a, "i_start": 29, "sdedit_i_starts": [0]}, schedule)
    assert not i_starts_index({**a, "i_start": 30}, schedule)
    assert reverse_chain_runs(schedule) and not reverse_chain_runs(NoiseSchedule.linear(1e-9, 0.02, 300))
    assert not reverse_chain_runs(NoiseSchedule.linear(1e-4, 0.9, 300))
