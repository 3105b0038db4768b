"""Config validation: the JSON schema in config/schema.yaml (through Snakemake's `validate`, which also
fills defaults) plus the checks a schema cannot express (finite numbers, an evaluation epoch beyond the
number of epochs, beta_start < beta_end, paths that must exist) and the cross-key limits of the code
(`limit_errors`: filter sizes against the image, indices into the strided timesteps, noise levels against
the DDPM schedule), which are checked by calling the very functions the jobs call, so that config and code
cannot disagree. Every failure is one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
from pathlib import Path
from typing import Any, Callable

import yaml

from difflab import DifflabError


def _key(path) -> str:
    """['part_a', 'inpaint_masks', 0] -> 'part_a.inpaint_masks[0]'."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "<top level>"


def _shown(value) -> str:
    """repr of a config value, shortened so that a long prompt still gives a readable one-line error."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def _allowed(error) -> str:
    """What the schema allows, in words, for one jsonschema error."""
    v, rule = error.validator, error.validator_value
    words = {
        "minimum": f">= {rule}",
        "maximum": f"<= {rule}",
        "exclusiveMinimum": f"> {rule}",
        "exclusiveMaximum": f"< {rule}",
        "enum": "one of " + ", ".join(map(str, rule)) if isinstance(rule, list) else str(rule),
        "type": f"a value of type {rule}",
        "minItems": f"a list of at least {rule} items",
        "maxItems": f"a list of at most {rule} items",
        "uniqueItems": "a list without repeated items",
        "minLength": f"a string of at least {rule} characters",
        "maxLength": f"a string of at most {rule} characters",
        "pattern": f"a string matching {rule}",
    }
    if v in ("oneOf", "anyOf"):  # each alternative says what it is in its description
        return " or ".join(sub.get("description", "?") for sub in rule)
    return words.get(v, error.message)


def schema_errors(config: dict, schema: dict) -> list[str]:
    """All schema violations of `config`, each as one line."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            lines += [f"config key '{_key(path + [name])}' is missing; config/config.yaml sets every key" for name in missing]
            continue
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - set(allowed))
            for name in unknown:
                lines.append(f"config key '{_key(path + [name])}' is unknown; allowed keys here: {', '.join(allowed)}")
            continue
        lines.append(f"config key '{_key(path)}' = {_shown(error.instance)}: expected {_allowed(error)}")
    return lines


def semantic_errors(config: dict, root: Path) -> list[str]:
    """Cross-key checks on a defaults-filled config."""
    lines = []
    b = config["part_b"]
    for section, key in [("denoiser", "grid_epochs"), ("ddpm", "eval_epochs")]:
        epochs = b[section]["epochs"]
        late = [e for e in b[section][key] if e > epochs]
        if late:
            lines.append(f"config key 'part_b.{section}.{key}' = {b[section][key]}: epochs {late} are beyond part_b.{section}.epochs = {epochs}")
    ddpm = b["ddpm"]
    if ddpm["beta_start"] >= ddpm["beta_end"]:
        lines.append(f"config key 'part_b.ddpm.beta_start' = {ddpm['beta_start']}: expected < part_b.ddpm.beta_end = {ddpm['beta_end']}")
    if b["fid"]["num_images"] > 10000:
        lines.append(f"config key 'part_b.fid.num_images' = {b['fid']['num_images']}: expected <= 10000 (FID compares against as many MNIST test images)")
    a = config["part_a"]
    for i, item in enumerate(a["inpaint_masks"]):
        key = f"config key 'part_a.inpaint_masks[{i}]'"
        if isinstance(item, str):
            if not (root / item).is_file():
                lines.append(f"{key} = {item!r}: mask image not found (paths are relative to the repository root)")
            continue
        r0, r1, c0, c1 = item
        if not (r0 < r1 and c0 < c1):
            lines.append(f"{key} = {item}: expected [row0, row1, col0, col1] with row0 < row1 and col0 < col1")
        elif (r1 - r0) * (c1 - c0) >= 28 * 28:
            lines.append(f"{key} = {item}: the rectangle covers the whole image, so nothing of the original is kept; "
                         "expected a smaller rectangle")
    for key, value in (("data.raw_dir", config["data"]["raw_dir"]), ("part_a.images_dir", a["images_dir"])):
        if value and not (root / value).is_dir():
            lines.append(f"config key '{key}' = {value!r}: folder does not exist (use \"\" for the default)")
    return lines


def deepfloyd_weight_errors(d: dict) -> list[str]:
    """part_a.deepfloyd: the stage I weights (with the T5 encoder when prompt_embeds is "") and, with stage_2 on, the
    stage II weights must be on disk (model_dir or the Hugging Face cache); one line each naming what is missing,
    how to get it and the config key (difflab.edit.backends.deepfloyd_weights; no torch). rules/common.smk runs it
    in the main process: an error before any job, a warning in a dry run (which plans without weights)."""
    from difflab.edit.backends.deepfloyd_weights import missing_weights

    lines = missing_weights(d["model_id"], d["model_dir"], "part_a.deepfloyd.model_dir", needs_text_encoder=not d["prompt_embeds"])
    if d["stage_2"]:
        lines += missing_weights(d["stage_2_id"], d["stage_2_dir"], "part_a.deepfloyd.stage_2_dir")
    return lines


def deepfloyd_prompt_errors(config: dict) -> list[str]:
    """With part_a.deepfloyd.prompt_embeds set, every prompt the config uses must be a key of that dict: one line
    per missing prompt naming it and the file (T5 is never loaded then)."""
    from difflab.commands.deepfloyd import config_prompts
    from difflab.edit.backends.deepfloyd import load_prompt_embeds, missing_prompts
    from difflab.settings import settings_class, settings_dict

    path = config["part_a"]["deepfloyd"]["prompt_embeds"]
    if config["part_a"]["backend"] != "deepfloyd" or not path:
        return []
    try:
        embeds = load_prompt_embeds(path)
    except DifflabError as exc:
        return [f"config key 'part_a.deepfloyd.prompt_embeds': {exc}"]
    prompts = config_prompts(settings_class("models.deepfloyd_embeds")(**settings_dict(config, "models.deepfloyd_embeds")))
    return [f"prompt {p[:60]!r} (used by the config) is not in {path} (config key 'part_a.deepfloyd.prompt_embeds'); "
            "add it to that dict or set the key to \"\" to encode every prompt with T5" for p in missing_prompts(prompts, embeds)]


@functools.lru_cache(maxsize=4)
def _load_schema(path: str, mtime_ns: int) -> dict:
    """The schema YAML, read once per file version (validation runs per Snakefile parse and per test example),
    with every key of every object required: the schema states types and ranges, config/config.yaml every value
    (no default is stated twice), so a key missing from the merged config is an error, never silently filled."""
    schema = yaml.safe_load(Path(path).read_text())
    _require_every_key(schema)
    return schema


def _require_every_key(node: dict) -> None:
    if isinstance(node.get("properties"), dict):
        node["required"] = list(node["properties"])
        for child in node["properties"].values():
            if isinstance(child, dict):
                _require_every_key(child)


def nonfinite_errors(config, path=()) -> list[str]:
    """Every NaN or infinite number in `config` (YAML's .nan and .inf pass JSON Schema's minimum/maximum)."""
    if isinstance(config, dict):
        return [line for key, value in config.items() for line in nonfinite_errors(value, (*path, key))]
    if isinstance(config, list):
        return [line for i, value in enumerate(config) for line in nonfinite_errors(value, (*path, i))]
    if isinstance(config, float) and not math.isfinite(config):
        return [f"config key '{_key(list(path))}' = {config!r}: expected a finite number"]
    return []


def validate_config(config: dict, schema_path: str | os.PathLike, root: str | os.PathLike = ".",
                    check_limits: bool = True) -> dict:
    """Validate `config` (every key present, types and ranges, cross-key limits); raise DifflabError with one line
    per problem. Returns `config` unchanged.

    check_limits=False skips `limit_errors` (they import torch); the Snakefile skips them only in jobs that an
    executor spawns, whose config the main process has already checked.
    """
    schema_path = Path(schema_path)
    schema = _load_schema(str(schema_path.resolve()), schema_path.stat().st_mtime_ns)
    problems = schema_errors(config, schema) + nonfinite_errors(config)
    if not problems:
        problems = semantic_errors(config, Path(root)) + (limit_errors(config) if check_limits else [])
    if problems:
        raise DifflabError("\n".join(problems))
    return config


# --- cross-key limits, checked with the code's own functions -------------------------------------------------


def backend_image_shape(name: str) -> tuple[int, ...]:
    """The (C, H, W) images of the Part A backend registered as `name` (its class attribute `image_shape`),
    resolved through the registry that `difflab.edit.backends.load_backend` uses, without loading a checkpoint."""
    from difflab.edit.backends import BACKENDS

    module_name, class_name = BACKENDS[name].split(":")
    return tuple(getattr(importlib.import_module(module_name), class_name).image_shape)


def filter_failure(run: Callable[[], Any]) -> str | None:
    """None if `run()` returns a tensor of finite values, else why not: the exception it raised (type and first
    line) or 'non-finite values'. Used to try a filter on a probe image exactly as a job would apply it."""
    import torch

    try:
        out = run()
    except Exception as exc:  # noqa: BLE001 -- whatever the job's code raises is the answer to report
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return None if bool(torch.isfinite(out).all()) else "non-finite values"


def largest_passing(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest n in [lo, hi] with ok(n), for ok true up to some n and false above it (bisection); None if
    not ok(lo)."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def hybrid_filter_errors(a: dict, image_size: int) -> list[str]:
    """part_a.hybrid_*: the job's own scaling (`difflab.experiments.part_a.illusions.hybrid_filter`, i.e.
    `scale_blur_to_size`), then the low- and high-pass of A.1.9 on a probe image of the backend's size."""
    import torch

    from difflab.edit import algorithms as A

    probe = torch.ones(1, 1, image_size, image_size)

    def scaled(kernel_size: int) -> tuple[int, float]:
        return A.scale_blur_to_size(kernel_size, a["hybrid_sigma"], image_size, a["hybrid_reference_size"])

    def failure(kernel_size: int) -> str | None:
        k, sigma = scaled(kernel_size)
        return filter_failure(lambda: A.lowpass(probe, k, sigma) + A.highpass(probe, k, sigma))

    size, sigma, reference = a["hybrid_kernel_size"], a["hybrid_sigma"], a["hybrid_reference_size"]
    try:
        k, scaled_sigma = scaled(size)
    except DifflabError as exc:
        return [str(exc)]
    why = failure(size)
    if why is None:
        return []
    largest = largest_passing(lambda j: failure(2 * j + 1) is None, 0, (size - 1) // 2)
    if largest is not None:
        return [f"config key 'part_a.hybrid_kernel_size' = {size}: scaled from hybrid_reference_size = {reference} px to "
                f"the {image_size} px images of the backend it is a {k} px Gaussian kernel, which does not fit the image; "
                f"expected an odd value <= {2 * largest + 1} at this reference size"]
    return [f"config keys 'part_a.hybrid_kernel_size' = {size}, 'part_a.hybrid_sigma' = {sigma!r}, "
            f"'part_a.hybrid_reference_size' = {reference}: their Gaussian filter ({k} px, sigma {scaled_sigma:.3g} at "
            f"{image_size} px) cannot be applied ({why})"]


def hybrid_sweep_errors(a: dict, image_size: int) -> list[str]:
    """part_a.hybrid_sigmas and a numeric part_a.hybrid_sigma_choice: each sigma's low-pass and high-pass as the jobs
    build them (`difflab.experiments.part_a.illusions.kernel_follows_sigma`: the kernel follows sigma at the ratio
    hybrid_kernel_size / hybrid_sigma) on a probe image of the backend's size. Checked only when the writeup's own
    filter passes (hybrid_filter_errors)."""
    import torch

    from difflab.edit import algorithms as A
    from difflab.experiments.part_a.illusions import kernel_follows_sigma

    probe = torch.ones(1, 1, image_size, image_size)

    def failure(sigma: float) -> str | None:
        def run():
            k, scaled = kernel_follows_sigma(sigma, a["hybrid_kernel_size"], a["hybrid_sigma"], image_size,
                                             a["hybrid_reference_size"])
            return A.lowpass(probe, k, scaled) + A.highpass(probe, k, scaled)
        return filter_failure(run)

    keyed = [(f"part_a.hybrid_sigmas[{i}]", s) for i, s in enumerate(a["hybrid_sigmas"])]
    if a["hybrid_sigma_choice"] != "best":
        keyed.append(("part_a.hybrid_sigma_choice", a["hybrid_sigma_choice"]))
    ratio = a["hybrid_kernel_size"] / a["hybrid_sigma"]
    return [f"config key '{key}' = {sigma!r}: its Gaussian low-pass (kernel {ratio:.3g} sigma at "
            f"{a['hybrid_reference_size']} px, from hybrid_kernel_size / hybrid_sigma) cannot be applied to the "
            f"{image_size} px images ({why}); expected a sigma whose kernel fits the image"
            for key, sigma in keyed if (why := failure(sigma)) is not None]


def blur_sigma_errors(name: str, sigmas: list, image_size: int) -> list[str]:
    """A list of blur candidates (config key `name`: part_a.blur_sigmas, part_b.denoiser.blur_sigmas): each
    sigma's Gaussian blur (A.1.2, `blur_denoise`, kernel `gaussian_kernel_size`) on a probe image of the image
    size; for a sigma too large, the largest one that runs (bisection)."""
    import torch

    from difflab.edit import algorithms as A

    probe, abar = torch.ones(1, 1, image_size, image_size), torch.ones(())

    def failure(sigma: float) -> str | None:
        return filter_failure(lambda: A.blur_denoise(probe, abar, sigma))

    def largest_sigma(failing: float) -> float | None:
        """The largest sigma that runs, to 4 significant digits (geometric bisection from 1, which runs)."""
        lo, hi = 1.0, failing
        if not (lo < hi and failure(lo) is None):
            return None
        while hi / lo > 1 + 1e-9:
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if failure(mid) is None else (lo, mid)
        rounded = float(f"{lo:.4g}")
        return rounded if failure(rounded) is None else math.floor(lo * 1e4) / 1e4

    lines, limit = [], None
    for i, sigma in enumerate(sigmas):
        why = failure(sigma)
        if why is None:
            continue
        key = f"config key '{name}[{i}]' = {sigma!r}"
        limit = limit if limit is not None and sigma > limit else largest_sigma(sigma)
        if limit is not None:
            lines.append(f"{key}: its Gaussian kernel (gaussian_kernel_size, 2 ceil(3 sigma) + 1 px) does not fit the "
                         f"{image_size} px images of the backend; expected sigma <= {limit:g}")
        else:
            lines.append(f"{key}: its Gaussian blur cannot be applied to the {image_size} px images of the backend ({why})")
    return lines


def backend_num_timesteps(config: dict) -> int:
    """T of the Part A backend's schedule: part_b.ddpm.num_timesteps for mnist, the class attribute num_timesteps
    otherwise (DeepFloyd IF: 1000)."""
    if config["part_a"]["backend"] == "mnist":
        return config["part_b"]["ddpm"]["num_timesteps"]
    from difflab.edit.backends import BACKENDS

    module_name, class_name = BACKENDS[config["part_a"]["backend"]].split(":")
    return int(getattr(importlib.import_module(module_name), class_name).num_timesteps)


def i_start_errors(config: dict) -> list[str]:
    """part_a.i_start and part_a.sdedit_i_starts: indices into the strided timesteps of A.1.4, checked by the
    job's own check (`difflab.sampler.check_i_start`, which the reverse loop runs) on the job's own
    list (`denoising_timesteps`)."""
    from difflab.edit.algorithms import denoising_timesteps
    from difflab.sampler import check_i_start

    a, T = config["part_a"], backend_num_timesteps(config)
    timesteps = denoising_timesteps(T, a["stride"])
    keys = [("i_start", a["i_start"])] + [(f"sdedit_i_starts[{j}]", i) for j, i in enumerate(a["sdedit_i_starts"])]
    lines = []
    for key, value in keys:
        try:
            check_i_start(value, timesteps)
        except ValueError as exc:
            lines.append(f"config key 'part_a.{key}' = {value}: {exc} ({a['backend']} backend: T = {T}, "
                         f"part_a.stride = {a['stride']})")
    return lines


def schedule_errors(config: dict) -> list[str]:
    """part_b.ddpm.beta_start / beta_end / num_timesteps: the code's schedule (`NoiseSchedule.linear`, abar_t in
    float32) must keep 0 < abar_t < 1, since the reverse process divides by 1 - abar_t (`posterior_mean`) and by
    sqrt(abar_t) (`predict_x0`); a beta_start below about 6e-8 rounds abar_0 to 1, a long or steep schedule
    underflows abar_(T-1) to 0, and sampling then gives NaN images."""
    from difflab.schedule import NoiseSchedule

    d = config["part_b"]["ddpm"]
    abar = NoiseSchedule.linear(d["beta_start"], d["beta_end"], d["num_timesteps"]).alphas_cumprod
    keys = (f"config keys 'part_b.ddpm.beta_start' = {d['beta_start']!r}, 'part_b.ddpm.beta_end' = {d['beta_end']!r}, "
            f"'part_b.ddpm.num_timesteps' = {d['num_timesteps']}")
    lines = []
    if not float(abar[0]) < 1:
        lines.append(f"{keys}: abar_0 = 1 - beta_start rounds to 1 in float32, and sampling divides by 1 - abar_t; "
                     "expected a larger beta_start")
    if not float(abar[-1]) > 0:
        lines.append(f"{keys}: abar_(T-1) underflows to 0 in float32, and sampling divides by sqrt(abar_t); "
                     "expected a smaller beta_end or fewer timesteps")
    return lines


def noise_level_errors(config: dict) -> list[str]:
    """part_b.denoiser.noise_levels: the OOD table feeds each sigma to the time-conditioned DDPM at
    `sigma_to_timestep`, which cannot represent a sigma above `sigma_max` of the configured schedule."""
    from difflab.schedule import NoiseSchedule, sigma_max

    d, levels = config["part_b"]["ddpm"], config["part_b"]["denoiser"]["noise_levels"]
    limit = sigma_max(NoiseSchedule.linear(d["beta_start"], d["beta_end"], d["num_timesteps"]))
    beyond = [s for s in levels if s > limit]
    if not beyond:
        return []
    return [f"config key 'part_b.denoiser.noise_levels' = {_shown(levels)}: {_shown(beyond)} exceed the largest noise level "
            f"of the time-conditioned DDPM's schedule (T = {d['num_timesteps']}, beta {d['beta_start']:g} -> {d['beta_end']:g}), "
            f"sigma_max = sqrt((1 - abar_(T-1)) / abar_(T-1)); expected levels <= {math.floor(limit * 1e4) / 1e4:g}"]


def step_count_errors(config: dict) -> list[str]:
    """part_b.steps.step_counts: a chain of N model calls needs N <= part_b.ddpm.num_timesteps timesteps."""
    T, counts = config["part_b"]["ddpm"]["num_timesteps"], config["part_b"]["steps"]["step_counts"]
    beyond = [n for n in counts if n > T]
    if not beyond:
        return []
    return [f"config key 'part_b.steps.step_counts' = {_shown(counts)}: {_shown(beyond)} exceed "
            f"part_b.ddpm.num_timesteps = {T}; expected step counts <= {T}"]


def limit_errors(config: dict) -> list[str]:
    """The cross-key limits of a schema-valid, defaults-filled config (imports torch and the job modules)."""
    a = config["part_a"]
    image_size = backend_image_shape(a["backend"])[-1]
    schedule = schedule_errors(config)
    hybrid = hybrid_filter_errors(a, image_size)
    hybrid = hybrid or hybrid_sweep_errors(a, image_size)
    return (hybrid + blur_sigma_errors("part_a.blur_sigmas", a["blur_sigmas"], image_size)
            + blur_sigma_errors("part_b.denoiser.blur_sigmas", config["part_b"]["denoiser"]["blur_sigmas"],
                                backend_image_shape("mnist")[-1])
            + i_start_errors(config) + schedule + ([] if schedule else noise_level_errors(config))
            + deepfloyd_prompt_errors(config)
            + step_count_errors(config))


def load_config(*paths: str | os.PathLike) -> dict[str, Any]:
    """Merge YAML files left to right (later keys win, nested dicts merged), as Snakemake does."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise DifflabError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise DifflabError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        _merge(merged, data)
    return merged


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
