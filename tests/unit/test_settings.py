"""Each job's settings: exactly config keys that exist, named as their keys; every config key read by a job."""

import dataclasses
import json

import pytest
import yaml

from conftest import ROOT
from difflab import DifflabError
from difflab.config import load_config, validate_config
from difflab.settings import JOBS, config_key, config_keys, from_json, settings_class, settings_json
from difflab.settings.pipeline import WORKFLOW_KEYS


def schema_leaves(node, prefix=""):
    """Dotted keys of every leaf of the config schema (objects are walked, everything else is a leaf)."""
    if node.get("type") == "object" and "properties" in node:
        for name, child in node["properties"].items():
            yield from schema_leaves(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip(".")


@pytest.fixture(scope="module")
def schema_keys():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    return set(schema_leaves(schema))


@pytest.fixture(scope="module")
def config():
    return validate_config(load_config(ROOT / "config" / "config.yaml"), ROOT / "config" / "schema.yaml", root=ROOT)


def all_fields():
    settings_class("data.mnist")  # registers every job
    return [(name, cls, field) for name, cls in JOBS.items() for field in dataclasses.fields(cls)]


def test_every_settings_field_is_a_config_key_named_as_its_last_part(schema_keys):
    for name, cls, field in all_fields():
        key = config_key(cls, field)
        assert key in schema_keys, f"job {name}: field {field.name} reads {key!r}, which the schema does not define"
        assert key.split(".")[-1] == field.name, f"job {name}: field {field.name} reads {key!r}"


def test_every_config_key_is_read_by_a_job_or_the_workflow(schema_keys):
    read = {config_key(cls, field) for _, cls, field in all_fields()} | set(WORKFLOW_KEYS)
    assert sorted(schema_keys - read) == []


def test_settings_are_frozen_and_round_trip_through_json(config):
    for name in JOBS:
        settings = from_json(name, settings_json(config, name))
        assert dataclasses.asdict(settings) == json.loads(settings_json(config, name))
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.seed = None  # also for the jobs that read no key


def test_a_job_gets_only_its_keys(config):
    keys = config_keys("models.train_time")
    assert "p_uncond" not in keys and keys["train_subset"] == "data.train_subset"
    assert "gif_frames" not in json.loads(settings_json(config, "models.train_class"))


def test_settings_with_missing_or_extra_keys_are_a_one_line_error(config):
    values = json.loads(settings_json(config, "models.classifier"))
    with pytest.raises(DifflabError, match="must hold exactly"):
        from_json("models.classifier", json.dumps({**values, "extra": 1}))
    with pytest.raises(DifflabError, match="not valid JSON"):
        from_json("models.classifier", "{")
    with pytest.raises(DifflabError, match="no settings for job"):
        from_json("models.nothing", "{}")
