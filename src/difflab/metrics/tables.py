"""Tidy metric tables: one number per row, in CSV files under results/metrics/.

Columns, in this order:
    experiment  which experiment produced it (classifier, fid, cfg_sweep, fid_floor, ...)
    model       which model (cnn, time, class, mnist-train, ...)
    epoch       training epoch of the model, or empty
    parameter   the swept setting as "name=value" (e.g. "guidance=5"), or empty
    metric      what was measured (fid, class_accuracy, test_accuracy, psnr_mean, ...)
    value       the number
    n           how many images it was measured on, or empty
    extractor   the FID feature extractor (e.g. "mnist-classifier(width=32)"), or empty

The report reads these files with `read_metrics` and turns slices of them into Pandoc tables with
`markdown_table`; no number is typed into the report by hand.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import pandas as pd

from difflab import DifflabError
from difflab.io import write_text

COLUMNS = ("experiment", "model", "epoch", "parameter", "metric", "value", "n", "extractor")
REQUIRED = ("experiment", "model", "metric", "value")


def _as_int(value, key: str, where: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise DifflabError(f"{where}: {key} is {value!r}; expected an integer or empty")
    try:
        return str(int(value))
    except (TypeError, ValueError):
        raise DifflabError(f"{where}: {key} is {value!r}; expected an integer or empty") from None


def _format_row(row: dict, where: str) -> list[str]:
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise DifflabError(f"{where}: unknown column(s) {', '.join(unknown)}; expected only {', '.join(COLUMNS)}")
    missing = [key for key in REQUIRED if row.get(key) is None or row.get(key) == ""]
    if missing:
        raise DifflabError(f"{where}: missing {', '.join(missing)}; every row needs {', '.join(REQUIRED)}")
    try:
        value = float(row["value"])
    except (TypeError, ValueError):
        raise DifflabError(f"{where}: value is {row['value']!r}; expected a number") from None
    text = {key: str(row.get(key) if row.get(key) is not None else "") for key in ("experiment", "model", "parameter", "metric", "extractor")}
    return [text["experiment"], text["model"], _as_int(row.get("epoch"), "epoch", where), text["parameter"], text["metric"],
            repr(value) if math.isfinite(value) else str(value), _as_int(row.get("n"), "n", where), text["extractor"]]


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write rows (dicts keyed by COLUMNS; epoch, parameter, n, extractor optional) as a tidy CSV, atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DifflabError(f"{path}: row {i + 1} is a {type(row).__name__}; expected a dict")
        writer.writerow(_format_row(row, f"{path}: row {i + 1}"))
    write_text(path, buf.getvalue())


def read_metrics(*paths: str | os.PathLike) -> pd.DataFrame:
    """Read and concatenate tidy metric CSVs. value is float; epoch and n are nullable integers (Int64);
    the text columns are strings with '' for empty."""
    if not paths:
        raise DifflabError("read_metrics needs at least one CSV path")
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DifflabError(f"{path}: metrics file not found")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if tuple(df.columns) != COLUMNS:
            raise DifflabError(f"{path}: columns are {', '.join(df.columns)}; expected {', '.join(COLUMNS)}")
        try:
            df["value"] = df["value"].astype(float)
            for key in ("epoch", "n"):
                df[key] = pd.to_numeric(df[key].replace("", None)).astype("Int64")
        except (TypeError, ValueError) as exc:
            raise DifflabError(f"{path}: malformed number ({exc})") from None
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def pipe_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A Pandoc pipe table of `df` (all columns, no index), no caption: missing values print as empty cells, floats
    use `floatfmt` (tabulate's format spec)."""
    cells = df.astype(object).where(df.notna(), "")
    return cells.to_markdown(index=False, tablefmt="pipe", floatfmt=floatfmt)


def markdown_table(df: pd.DataFrame, caption: str, label: str, floatfmt: str = ".4g") -> str:
    """A Pandoc pipe table of `df` (all columns, no index) followed by the caption line `: caption {#tbl-label}`.

    Missing values print as empty cells; floats use `floatfmt` (tabulate's format spec).
    """
    if df.empty:
        raise DifflabError(f"table {label!r} has no rows; its metrics files hold no matching values")
    if not caption or "\n" in caption:
        raise DifflabError(f"table {label!r}: the caption must be one non-empty line")
    label = label if label.startswith("tbl-") else f"tbl-{label}"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", label):
        raise DifflabError(f"table label {label!r}: use only letters, digits, '-' and '_'")
    return pipe_table(df, floatfmt) + f"\n\n: {caption} {{#{label}}}\n"
