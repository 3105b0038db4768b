"""Part B experiments (CS180 project 5, part B): compute only; each returns a typed Result written as files.

A Result is a frozen dataclass. Its numpy-array and scalar fields go to `result.npz`, its `rows` (tidy metric
rows, `difflab.metrics.tables` columns) to `results/metrics/part_b_<name>.csv`, and its `facts()` (display-ready
values for `{{< var part_b.<name>.<var> >}}`) to `facts.json`. Figures are drawn from those files by
`difflab.figures.part_b`; prose lives in `report/sections/part_b.qmd`.

`EXPERIMENTS` maps each job name to "module:function"; the function takes (settings, inputs) and returns the
Result. Modules are imported only when their experiment runs, so the CSV summaries never import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from difflab import DifflabError
from difflab.io import atomic_path, write_json

EXPERIMENTS: dict[str, str] = {
    "denoiser": "difflab.experiments.part_b.denoiser:denoiser",
    "ood": "difflab.experiments.part_b.denoiser:ood",
    "time_grids": "difflab.experiments.part_b.ddpm:time_grids",
    "class_grids": "difflab.experiments.part_b.ddpm:class_grids",
    "time_gif": "difflab.experiments.part_b.ddpm:time_gif",
    "class_gif": "difflab.experiments.part_b.ddpm:class_gif",
    "cfg": "difflab.experiments.part_b.ddpm:cfg_grid",
    "cfg_tradeoff": "difflab.experiments.part_b.summaries:cfg_tradeoff",
    "fid": "difflab.experiments.part_b.summaries:fid",
    "ema": "difflab.experiments.part_b.ema:ema",
    "models": "difflab.experiments.part_b.summaries:models",
    "time_steps": "difflab.experiments.part_b.steps:time_steps",
    "class_steps": "difflab.experiments.part_b.steps:class_steps",
    "steps": "difflab.experiments.part_b.steps:steps",
}

FACT_NAME = re.compile(r"[a-z0-9_]+")


def experiment_function(name: str):
    """The compute function of experiment `name`. Raises DifflabError for an unknown name."""
    if name not in EXPERIMENTS:
        raise DifflabError(f"unknown Part B experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    module, function = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module), function)


def g(x: float, digits: int = 3) -> str:
    """A number as the report prints it: `digits` significant digits, no trailing zeros (12.25 -> '12.2')."""
    return f"{float(x):.{digits}g}"


def number_list(values) -> str:
    """'0, 0.2, 0.5': a list of numbers as the report prints it."""
    return ", ".join(g(v) for v in values)


def percent(x: float, decimals: int = 1) -> str:
    """0.875 -> '87.5%'."""
    return f"{100 * float(x):.{decimals}f}%"


def write_result(result: Any, out_dir: str | Path, metrics_out: str | Path) -> None:
    """Write a Result: its array/scalar fields to out_dir/result.npz, `facts()` to out_dir/facts.json and
    `rows` to metrics_out (a header-only CSV when it has none), each atomically.

    Raises DifflabError when a fact name is not [a-z0-9_]+ (the report could not name it)."""
    from difflab.metrics.tables import write_metrics

    out = Path(out_dir)
    arrays = {f.name: np.asarray(getattr(result, f.name)) for f in dataclasses.fields(result) if f.name != "rows"}
    with atomic_path(out / "result.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    facts = result.facts()
    bad = [key for key in facts if not FACT_NAME.fullmatch(key)]
    if bad:
        raise DifflabError(f"{out / 'facts.json'}: fact names {bad} must match [a-z0-9_]+")
    write_json(out / "facts.json", facts)
    write_metrics(metrics_out, list(getattr(result, "rows", ())))
