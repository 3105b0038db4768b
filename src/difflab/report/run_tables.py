"""The run's own tables: the manifest and the timing of every job (Snakemake benchmark files)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from difflab import DifflabError
from difflab.io import read_json, write_text
from difflab.usage import read_usage
from difflab.report.page import REQUIRED_MANIFEST_KEYS, _commit_text, _plain, _require

BENCHMARK_COLUMNS = ("s", "max_rss", "cpu_time")


def _cell(value) -> str:
    return _plain(value).replace("|", "\\|").replace("\n", " ")


def pipe_table(headers: list[str], rows: list[list], align: str) -> str:
    """A pandoc pipe table; `align` has one of l/r per column."""
    rule = {"l": ":---", "r": "---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def manifest_markdown(manifest: dict, source: Path) -> str:
    """The run manifest as a two-column table, followed by the resolved config in a collapsed block."""
    for key in REQUIRED_MANIFEST_KEYS:
        _require(manifest, key, source)
    packages = manifest["packages"]
    if not isinstance(packages, dict):
        raise DifflabError(f"{source}: key 'packages' must be an object of name -> version")
    rows = [
        ["git commit", _commit_text(manifest, short=False)],
        ["profile", manifest["profile"]],
        ["device", manifest["device"]],
        ["CUDA", manifest.get("cuda_version")],
        ["config sha256", f"`{manifest['config_sha256']}`"],
        ["seed", manifest["seed"]],
        ["started (UTC)", manifest["started_utc"] or "not recorded"],
        ["finished (UTC)", manifest.get("finished_utc") or "not recorded"],
        ["python", manifest.get("python") or "not recorded"],
        ["platform", manifest.get("platform") or "not recorded"],
    ]
    rows += [[f"package {name}", version] for name, version in sorted(packages.items())]
    text = pipe_table(["field", "value"], rows, "ll") + f"\n: Run manifest ({source.name}) {{#tbl-manifest}}\n"
    if manifest.get("config"):
        config = json.dumps(manifest["config"], indent=2, sort_keys=True, default=str)
        text += f"\n<details><summary>Resolved configuration</summary>\n\n```\n{config}\n```\n\n</details>\n"
    return text


def _number(value: str, path: Path, column: str) -> float | None:
    """A benchmark cell as float; Snakemake writes NA (or '-') when it could not measure."""
    if value.strip() in {"NA", "-", ""}:
        return None
    try:
        return float(value)
    except ValueError:
        raise DifflabError(f"{path}: column {column!r} holds {value!r}; expected a number or NA") from None


def read_benchmark(path: Path) -> dict[str, float | None]:
    """Mean of s, max_rss (MB) and cpu_time over the rows of one Snakemake benchmark TSV, plus the row count."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or any(col not in rows[0] for col in BENCHMARK_COLUMNS):
        raise DifflabError(f"{path}: not a Snakemake benchmark TSV (expected a header with {', '.join(BENCHMARK_COLUMNS)} and a row)")
    result: dict[str, float | None] = {"runs": len(rows)}
    for col in BENCHMARK_COLUMNS:
        values = [v for v in (_number(row[col], path, col) for row in rows) if v is not None]
        result[col] = sum(values) / len(values) if values else None
    return result


def _fmt(value: float | None, digits: int) -> str:
    return "NA" if value is None else f"{value:,.{digits}f}"


def timings_markdown(folder: Path, logs: Path | None = None) -> str:
    """A table of every benchmark TSV under `folder` (job = path without .tsv), with totals on the last row.

    Wall time is Snakemake's. Peak memory and CPU time come from the job's own usage line in its log
    (`logs`/<job>.log, difflab.usage) where there is one, since under the job server Snakemake measures only the
    forwarding process; else from the TSV. A peak-CUDA-memory column appears when any job used CUDA."""
    if not folder.is_dir():
        raise DifflabError(f"{folder}: benchmark folder not found")
    files = sorted(folder.rglob("*.tsv"))
    if not files:
        return f"No Snakemake benchmark files were found under `{folder.as_posix()}`.\n"
    jobs = []
    for path in files:
        job = path.relative_to(folder).with_suffix("").as_posix()
        b = read_benchmark(path)
        own = read_usage(logs / f"{job}.log") if logs is not None else None
        if own is not None:
            b |= own
        jobs.append((job, b))
    cuda = any(b.get("cuda_peak") is not None for _, b in jobs)
    rows, wall, cpu, rss, peaks = [], 0.0, 0.0, [], []
    for job, b in jobs:
        runs = f" (mean of {b['runs']})" if b["runs"] > 1 else ""
        rows.append([f"`{job}`{runs}", _fmt(b["s"], 2), _fmt(b["max_rss"], 1), _fmt(b["cpu_time"], 2)]
                    + ([_fmt(b.get("cuda_peak"), 1)] if cuda else []))
        wall += b["s"] or 0.0
        cpu += b["cpu_time"] or 0.0
        rss += [b["max_rss"]] if b["max_rss"] is not None else []
        peaks += [b["cuda_peak"]] if b.get("cuda_peak") is not None else []
    rows.append([f"**total ({len(files)} jobs)**", f"**{_fmt(wall, 2)}**", f"**peak {_fmt(max(rss) if rss else None, 1)}**",
                 f"**{_fmt(cpu, 2)}**"] + ([f"**peak {_fmt(max(peaks), 1)}**"] if cuda else []))
    headers = ["job", "wall (s)", "max RSS (MB)", "CPU time (s)"] + (["peak CUDA memory (MB)"] if cuda else [])
    table = pipe_table(headers, rows, "lrrr" + ("r" if cuda else ""))
    return (table + f"\n: Every job's wall time (Snakemake benchmarks, {folder.as_posix()}), peak memory and CPU time (the "
            "job's own, from its log); the total sums the wall and CPU times of all jobs, which may have run in "
            "parallel {#tbl-timings}\n")


def write_run_tables(manifest_path: str | Path, benchmarks: str | Path, out_dir: str | Path,
                     logs: str | Path | None = None) -> list[Path]:
    """Write manifest.md and timings.md into `out_dir` (job usage from the logs under `logs`); returns their paths."""
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise DifflabError(f"{manifest_path}: expected a JSON object")
    outputs = {out_dir / "manifest.md": manifest_markdown(manifest, manifest_path),
               out_dir / "timings.md": timings_markdown(Path(benchmarks), Path(logs) if logs else None)}
    for path, text in outputs.items():
        write_text(path, text)
    return list(outputs)
