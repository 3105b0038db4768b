"""Numbers for the text: every experiment's facts.json gathered into the report's variables.

An experiment `<part>.<name>` writes `results/experiments/<part>/<name>/facts.json`, a flat object of
display-ready values; the report reads one as `{{< var <part>.<name>.<var> >}}`. This module nests them as
{part: {name: {var: value}}}, the shape of Quarto's `_variables.yml`.
"""

from __future__ import annotations

import re
from pathlib import Path

from difflab import DifflabError
from difflab.io import read_json, write_json

NAME = re.compile(r"[a-z0-9_]+")


def experiment_of(path: Path) -> tuple[str, str]:
    """('part_a', 'sampling') for .../experiments/part_a/sampling/facts.json."""
    if path.name != "facts.json" or len(path.parts) < 3:
        raise DifflabError(f"{path}: expected .../<part>/<experiment>/facts.json")
    return path.parts[-3], path.parts[-2]


def collect_variables(paths: list[str | Path]) -> dict[str, dict[str, dict]]:
    """{part: {experiment: facts}} from facts.json files. Raises DifflabError for a file that is not a flat
    object of numbers, strings or booleans with names matching [a-z0-9_]+, or for an experiment given twice."""
    variables: dict[str, dict[str, dict]] = {}
    for path in map(Path, paths):
        part, name = experiment_of(path)
        facts = read_json(path)
        if not isinstance(facts, dict):
            raise DifflabError(f"{path}: expected a JSON object of facts")
        for key, value in facts.items():
            if not NAME.fullmatch(key) or not isinstance(value, (int, float, str, bool)):
                raise DifflabError(f"{path}: fact {key!r} = {value!r}; expected a name of [a-z0-9_] and a number or string")
        if name in variables.setdefault(part, {}):
            raise DifflabError(f"{path}: facts of {part}.{name} are given twice")
        variables[part][name] = facts
    return variables


def write_variables(paths: list[str | Path], out: str | Path) -> dict:
    """collect_variables(paths) written atomically as JSON to `out`; returns them."""
    variables = collect_variables(paths)
    write_json(out, variables)
    return variables
