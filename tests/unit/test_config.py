"""Config validation: every profile is valid; bad values stop the run with one line naming the key."""

import copy
import math
import re
import subprocess
from types import SimpleNamespace

import pytest

from difflab import DifflabError
from difflab.config import load_config, validate_config
from difflab.schedule import NoiseSchedule, sigma_max
from difflab.workflow import layer_config

from conftest import ROOT, snakemake_cmd, subprocess_env

SCHEMA = ROOT / "config" / "schema.yaml"


def config_for(profile: str) -> dict:
    files = [ROOT / "config" / "config.yaml"]
    if profile != "default":
        files.append(ROOT / "config" / f"{profile}.yaml")
    return load_config(*files)


@pytest.mark.parametrize("profile", ["default", "smoke", "laptop"])
def test_every_profile_is_valid(profile):
    config = validate_config(config_for(profile), SCHEMA, root=ROOT)
    assert config["profile"] == profile


def test_overlay_changes_only_what_it_names():
    full, smoke = config_for("default"), config_for("smoke")
    assert smoke["part_b"]["ddpm"]["hidden"] == 8 and full["part_b"]["ddpm"]["hidden"] == 64
    assert smoke["part_b"]["ddpm"]["num_timesteps"] == 100 and full["part_b"]["ddpm"]["num_timesteps"] == 300
    assert smoke["part_b"]["ddpm"]["beta_end"] == full["part_b"]["ddpm"]["beta_end"] == 0.02  # not named: inherited


def test_values_live_once_in_config_yaml_and_a_missing_key_is_named():
    assert "default:" not in SCHEMA.read_text()  # the schema states types and ranges, config.yaml the values
    config = copy.deepcopy(config_for("default"))
    del config["part_b"]["ddpm"]["batch_size"]
    del config["seed"]
    with pytest.raises(DifflabError) as info:
        validate_config(config, SCHEMA, root=ROOT)
    assert sorted(str(info.value).splitlines()) == [
        "config key 'part_b.ddpm.batch_size' is missing; config/config.yaml sets every key",
        "config key 'seed' is missing; config/config.yaml sets every key"]


def edited(path: str, value):
    config = copy.deepcopy(config_for("default"))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("part_b.ddpm.epochs", -1, "'part_b.ddpm.epochs' = -1: expected >= 1"),
        ("part_b.ddpm.epochs", "many", "'part_b.ddpm.epochs' = 'many': expected a value of type integer"),
        ("part_a.backend", "stable-diffusion", "'part_a.backend' = 'stable-diffusion': expected one of mnist"),
        ("device", "tpu", "'device' = 'tpu': expected one of auto, cpu, cuda"),
        ("profile", "huge", "'profile' = 'huge': expected one of default, smoke, laptop, slurm"),
        ("part_b.ddpm.p_uncond", 1.5, "'part_b.ddpm.p_uncond' = 1.5: expected <= 1"),
        ("part_b.ddpm.eval_epochs", [1, 25], "'part_b.ddpm.eval_epochs' = [1, 25]: epochs [25] are beyond part_b.ddpm.epochs = 20"),
        ("part_b.ddpm.beta_start", 0.05, "'part_b.ddpm.beta_start' = 0.05: expected < part_b.ddpm.beta_end"),
        ("data.raw_dir", "no/such/folder", "'data.raw_dir' = 'no/such/folder': folder does not exist"),
        ("part_a.i_start", 30, "'part_a.i_start' = 30: expected an index into the 30 strided timesteps 290..0, i.e. 0..29"),
        ("part_a.sdedit_i_starts", [1, 30], "'part_a.sdedit_i_starts[1]' = 30: expected an index into the 30 strided"),
        ("part_a.hybrid_kernel_size", 255, "'part_a.hybrid_kernel_size' = 255: scaled from hybrid_reference_size = 64 px to "
                                           "the 28 px images of the backend it is a 111 px Gaussian kernel"),
        ("part_a.hybrid_kernel_size", 129, "'part_a.hybrid_kernel_size' = 129: scaled from hybrid_reference_size = 64 px"),
        ("part_a.hybrid_reference_size", 16, "'part_a.hybrid_kernel_size' = 33: scaled from hybrid_reference_size = 16 px to "
                                             "the 28 px images of the backend it is a 57 px Gaussian kernel, which does not fit "
                                             "the image; expected an odd value <= 31"),
        ("part_a.hybrid_sigma", 5e-324, "their Gaussian filter (15 px, sigma 0 at 28 px) cannot be applied"),
        ("part_a.blur_sigmas", [0.5, 9.01], "'part_a.blur_sigmas[1]' = 9.01: its Gaussian kernel"),
        ("part_a.blur_sigmas", [0.5, 1e300], "does not fit the 28 px images of the backend; expected sigma <= 9"),
        ("part_a.blur_sigmas", [1e-320], "'part_a.blur_sigmas[0]' = 1e-320: its Gaussian blur cannot be applied"),
        ("part_b.denoiser.noise_levels", [0.5, 4.46], "'part_b.denoiser.noise_levels' = [0.5, 4.46]: [4.46] exceed the largest "
                                                      "noise level of the time-conditioned DDPM's schedule (T = 300"),
        ("part_b.denoiser.noise_levels", [0.5, float("nan")], "'part_b.denoiser.noise_levels[1]' = nan: expected a finite number"),
        ("part_a.hybrid_sigma", float("inf"), "'part_a.hybrid_sigma' = inf: expected a finite number"),
        ("part_a.hybrid_sigmas", [2.0, 7.76], "'part_a.hybrid_sigmas[1]' = 7.76: its Gaussian low-pass (kernel 16.5 sigma "
         "at 64 px, from hybrid_kernel_size / hybrid_sigma) cannot be applied to the 28 px images (ValueError: a 57 px"),
        ("part_a.hybrid_sigma_choice", "good", "'part_a.hybrid_sigma_choice' = 'good': expected 'best' (the hybrid sweep's "
         "best sigma) or a number > 0 (px at hybrid_reference_size)"),
        ("part_a.hybrid_kernel_size", 43, "'part_a.hybrid_sigmas[5]' = 6.0: its Gaussian low-pass (kernel 21.5 sigma"),
        ("part_b.ddpm.beta_start", 1e-9, "'part_b.ddpm.num_timesteps' = 300: abar_0 = 1 - beta_start rounds to 1 in float32"),
        ("part_b.ddpm.beta_end", 0.9, "'part_b.ddpm.num_timesteps' = 300: abar_(T-1) underflows to 0 in float32"),
        ("part_b.ddpm.lerning_rate", 0.1, "'part_b.ddpm.lerning_rate' is unknown; allowed keys here: batch_size"),
        ("part_a.inpaint_masks", [[0, 14, 0]], "'part_a.inpaint_masks[0]' = [0, 14, 0]: expected a rectangle [row0, row1, col0, col1]"),
        ("part_a.inpaint_masks", [[0, 14, 0, 28], "masks/none.png"], "'part_a.inpaint_masks[1]' = 'masks/none.png': mask image not found"),
        ("part_a.inpaint_masks", [[0, 28, 0, 28]], "'part_a.inpaint_masks[0]' = [0, 28, 0, 28]: the rectangle covers the whole image"),
        ("part_a.inpaint_masks", [[9, 9, 0, 28]], "'part_a.inpaint_masks[0]' = [9, 9, 0, 28]: expected [row0, row1, col0, col1] with row0 < row1"),
        ("part_a.sample_prompts", ["a 3", ""], "'part_a.sample_prompts[1]' = '': expected a string of at least 1 characters"),
        ("part_a.img2img_prompts", ["an 8 " * 1000], "(5002 characters): expected a string of at most 200 characters"),
        ("part_b.steps.step_counts", [10, 301], "'part_b.steps.step_counts' = [10, 301]: [301] exceed part_b.ddpm.num_timesteps = 300"),
        ("part_a.sampler", "euler", "'part_a.sampler' = 'euler': expected one of ddpm, ddim"),
        ("part_b.ddpm.ddim_eta", 1.5, "'part_b.ddpm.ddim_eta' = 1.5: expected <= 1"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(path, value, expected):
    with pytest.raises(DifflabError) as info:
        validate_config(edited(path, value), SCHEMA, root=ROOT)
    message = str(info.value)
    assert expected in message
    assert len(message.splitlines()) == 1


# hybrid_kernel_size 42: the largest whose kernel, following sigma (16.5 -> 21 sigma), still fits at the sweep's sigma 6
@pytest.mark.parametrize("path,value", [("part_a.hybrid_kernel_size", 42), ("part_a.hybrid_sigmas", [7.75]),
                                        ("part_a.hybrid_sigma_choice", 7.75), ("part_a.blur_sigmas", [9.0]),
                                        ("part_a.i_start", 29), ("part_b.denoiser.noise_levels", [0.0, 4.45]),
                                        ("part_b.steps.step_counts", [1, 300])])
def test_the_largest_values_that_run_are_accepted(path, value):
    validate_config(edited(path, value), SCHEMA, root=ROOT)


def test_sigma_max_of_the_spec_schedule():
    assert sigma_max(NoiseSchedule.linear(1e-4, 0.02, 300)) == pytest.approx(4.4506, abs=1e-4)
    assert sigma_max(NoiseSchedule.linear(1e-4, 0.02, 100)) == pytest.approx(math.sqrt(1 / math.prod(
        1 - b for b in [1e-4 + i * (0.02 - 1e-4) / 99 for i in range(100)]) - 1), rel=1e-5)


@pytest.mark.parametrize("yaml_text,expected", [
    ("part_b:\n  denoiser:\n    epochs: 0\n", "config key 'part_b.denoiser.epochs' = 0: expected >= 1"),
    ("part_a:\n  hybrid_kernel_size: 255\n", "config key 'part_a.hybrid_kernel_size' = 255: scaled from hybrid_reference_size"),
])
def test_snakemake_stops_before_any_job_with_one_line(tmp_path, yaml_text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    result = subprocess.run(snakemake_cmd("-n", "--configfile", str(bad)), cwd=ROOT, capture_output=True, text=True, env=subprocess_env())
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "config error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"difflab: config error: {expected}")
    assert "Job stats" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_slurm_profile_plans_with_its_environment_and_names_what_is_missing():
    env = {**subprocess_env(), "SLURM_ACCOUNT": "lab", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}
    args = snakemake_cmd("-n", "--forceall", "--workflow-profile", "profiles/slurm", "--configfile", "config/smoke.yaml")
    planned = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    assert planned.returncode == 0, planned.stderr
    out = planned.stdout + planned.stderr
    assert "slurm_partition=gpu" in out and "slurm_account=lab" in out and "gpu=1" in out
    del env["SLURM_ACCOUNT"]
    missing = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    assert missing.returncode != 0
    assert "needs the environment variable SLURM_ACCOUNT" in missing.stderr


@pytest.mark.parametrize("profile", ["default", "smoke", "laptop"])
def test_dry_run_plans_every_profile(profile):
    result = subprocess.run(snakemake_cmd("-n", "--forceall", "--workflow-profile", f"profiles/{profile}"),
                            cwd=ROOT, capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "rule report:" in result.stdout + result.stderr


# --- layering: config.yaml < profile's configfile < --configfile < --config -----------------------------------

TARGETS = ["results/models/denoiser/epoch_1.pt", "results/experiments/part_b/time_gif/result.npz"]


def planned_settings(output: str, key: str) -> set[int]:
    """The values of one integer key in the --settings JSON of every planned shell command."""
    return {int(v) for v in re.findall(rf'"{key}": (\d+)', output)}


@pytest.mark.parametrize("extra", [[], ["--config", "seed=7"]])
def test_an_extra_configfile_keeps_the_profile(tmp_path, extra):
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 5\npart_b:\n  ddpm:\n    gif_frames: 7\n")  # laptop.yaml sets gif_frames: 30
    args = snakemake_cmd("-n", "-p", "--forceall", *TARGETS, "--workflow-profile", "profiles/laptop", "--configfile", str(mine), *extra)
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert planned_settings(out, "hidden") == {16}  # laptop's D for the denoiser and the DDPM, not 128 / 64
    assert planned_settings(out, "gif_frames") == {7}  # the user's file beats the profile's
    assert planned_settings(out, "seed") == ({7} if extra else {5})  # --config beats every file
    layers = f"difflab: config = config/config.yaml < config/laptop.yaml (profile profiles/laptop) < {mine} (--configfile)"
    assert layers + (" < --config seed=7" if extra else "") in result.stderr.splitlines()


def test_spawned_jobs_rebuild_the_same_config(tmp_path, monkeypatch):
    """A job an executor spawns re-reads the Snakefile with --configfiles <overwrite_configfiles> --config ...
    and no profile; after layering, those files start with the profile's."""
    from snakemake.settings.types import ConfigSettings
    from snakemake.utils import update_config

    monkeypatch.chdir(ROOT)
    mine = tmp_path / "mine.yaml"
    mine.write_text("part_b:\n  ddpm:\n    gif_frames: 7\n")
    settings = ConfigSettings(configfiles=[mine], config={"seed": 7})
    workflow = SimpleNamespace(config_settings=settings, configfiles=[*settings.configfiles, "config/config.yaml"])
    config = load_config(ROOT / "config" / "config.yaml", mine)  # what Snakemake built: the profile's file dropped
    config["seed"] = 7
    layer_config(workflow, config, ["--workflow-profile", "profiles/laptop", "--configfile", str(mine), "--config", "seed=7"])
    assert settings.configfiles == [ROOT / "config" / "laptop.yaml", mine]
    assert config["part_b"]["ddpm"]["hidden"] == 16 and config["part_b"]["ddpm"]["gif_frames"] == 7 and config["seed"] == 7
    job = load_config(ROOT / "config" / "config.yaml")
    update_config(job, ConfigSettings(configfiles=settings.configfiles, config={"seed": 7}).overwrite_config)
    assert job == config
