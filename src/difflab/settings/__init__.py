"""One frozen settings dataclass per job: its fields are exactly the config keys that job reads.

A job's settings class is registered under the job's name with `@job(name, section)`. Field `f` is the
config key `section.f`; the top-level keys (`seed`, `device`, `profile`) keep their own name, and a field
from another section says so with `other("part_b.ddpm.sample_batch_size")` (its name is still the key's
last part). So config key name = field name = the parameter of the function that uses it.

The Snakefile validates the whole config once (`difflab.config.validate_config`), then passes each job
`settings_json(config, name)`: only its keys, as JSON. Snakemake compares that text between runs, so a
changed key reruns exactly the jobs whose settings hold it. The job's command rebuilds the dataclass with
`from_json(name, text)`; nothing downstream re-validates.

This module imports neither torch nor numpy: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from difflab import DifflabError

# Config keys at the top level of config.yaml: a field with one of these names reads that key.
TOP_LEVEL = ("seed", "device", "profile")

JOBS: dict[str, type] = {}


def job(name: str, section: str):
    """Class decorator: make `cls` a frozen dataclass and register it as the settings of job `name`;
    its fields read keys of config section `section` (dotted, e.g. 'part_b.ddpm')."""

    def register(cls: type) -> type:
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls.JOB, cls.SECTION = name, section
        if name in JOBS:
            raise ValueError(f"settings for job {name!r} are defined twice")
        JOBS[name] = cls
        return cls

    return register


def other(key: str, **kwargs) -> Any:
    """A field that reads config key `key` (dotted) instead of `<section>.<field name>`."""
    return dataclasses.field(metadata={"key": key}, **kwargs)


def config_key(cls: type, field: dataclasses.Field) -> str:
    """The dotted config key a settings field reads."""
    if "key" in field.metadata:
        return field.metadata["key"]
    return field.name if field.name in TOP_LEVEL else f"{cls.SECTION}.{field.name}"


def config_keys(name: str) -> dict[str, str]:
    """{field name: dotted config key} of job `name`."""
    cls = settings_class(name)
    return {f.name: config_key(cls, f) for f in dataclasses.fields(cls)}


def lookup(config: dict, key: str) -> Any:
    """config['a']['b'] for key 'a.b' (a validated config has every key)."""
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node


def settings_class(name: str) -> type:
    _load_all()
    try:
        return JOBS[name]
    except KeyError:
        raise DifflabError(f"no settings for job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def settings_dict(config: dict, name: str) -> dict[str, Any]:
    """The values of job `name`'s keys in a validated config: {field name: value}."""
    return {field: lookup(config, key) for field, key in config_keys(name).items()}


def settings_json(config: dict, name: str) -> str:
    """Job `name`'s settings as the JSON text its rule passes (keys sorted, so equal settings give equal text)."""
    return json.dumps(settings_dict(config, name), sort_keys=True)


def from_json(name: str, text: str):
    """Rebuild job `name`'s frozen settings from the JSON its rule passed.

    Raises DifflabError for text that is not a JSON object with exactly the job's fields (a rule and its
    settings class out of step)."""
    cls = settings_class(name)
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DifflabError(f"--settings for job {name!r} is not valid JSON: {exc.msg}") from None
    expected = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(values, dict) or set(values) != expected:
        got = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise DifflabError(f"--settings for job {name!r} must hold exactly {sorted(expected)}; got {got}")
    return cls(**values)


def _load_all() -> None:
    """Import the modules that define job settings (they register themselves)."""
    from difflab.settings import part_a, part_b, pipeline  # noqa: F401
