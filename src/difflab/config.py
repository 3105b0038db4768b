"""Config validation: the JSON schema in config/schema.yaml (through Snakemake's `validate`, which also
fills defaults) plus the checks a schema cannot express (finite numbers, an evaluation epoch beyond the
number of epochs, beta_start < beta_end, paths that must exist) and the cross-key limits of the code
(`limit_errors`: filter sizes against the image, indices into the strided timesteps, noise levels against
the DDPM schedule), which are checked by calling the very functions the jobs call, so that config and code
cannot disagree. Every failure is one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

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
        if check_limits:
            from difflab.config_limits import limit_errors

        problems = semantic_errors(config, Path(root)) + (limit_errors(config) if check_limits else [])
    if problems:
        raise DifflabError("\n".join(problems))
    return config


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
