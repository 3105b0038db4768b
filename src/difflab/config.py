"""Config validation: the JSON schema in config/schema.yaml (through Snakemake's `validate`, which also
fills defaults) plus the checks a schema cannot express (an evaluation epoch beyond the number of
epochs, beta_start < beta_end, paths that must exist). Every failure is one line naming the key, the
value and what is allowed.
"""

from __future__ import annotations

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
    num_strided = (ddpm["num_timesteps"] - 1) // a["stride"] + 1
    if a["i_start"] >= num_strided - 1:
        lines.append(f"config key 'part_a.i_start' = {a['i_start']}: expected < {num_strided - 1} (there are {num_strided} strided timesteps with stride {a['stride']})")
    late = [i for i in a["sdedit_i_starts"] if i >= num_strided - 1]
    if late:
        lines.append(f"config key 'part_a.sdedit_i_starts' = {a['sdedit_i_starts']}: {late} are not < {num_strided - 1} (strided timesteps with stride {a['stride']})")
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


def validate_config(config: dict, schema_path: str | os.PathLike, root: str | os.PathLike = ".") -> dict:
    """Validate `config` in place, filling defaults; raise DifflabError with one line per problem."""
    schema_path = Path(schema_path)
    schema = yaml.safe_load(schema_path.read_text())
    problems = schema_errors(config, schema)
    if not problems:
        from snakemake.utils import validate

        validate(config, str(schema_path), set_default=True)
        problems = semantic_errors(config, Path(root))
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
