"""What Snakemake would rerun after one edit: a dry run of a finished workflow copy, the planned rules as a set."""

import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

from conftest import snakemake_cmd, subprocess_env

JOB_STATS = re.compile(r"^Job stats:\n(.*?)^total\s+\d+", re.MULTILINE | re.DOTALL)


def planned_rules(work: Path, *args: str) -> set[str]:
    """The rules a dry run of the smoke profile in `work` would run (the `all` target rule left out)."""
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/smoke", *args), cwd=work,
                            capture_output=True, text=True, env=subprocess_env(work / "src"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    if "Nothing to be done" in out:
        return set()
    stats = JOB_STATS.search(out)
    assert stats, out[-3000:]
    rows = [line.split() for line in stats.group(1).splitlines()]
    return {row[0] for row in rows if len(row) == 2 and row[1].isdigit()} - {"all"}


@contextmanager
def edited(path: Path, old: str, new: str):
    """`path` with its one occurrence of `old` replaced by `new` (appended when `old` is ''), restored afterwards
    with its old modification time (Snakemake compares input and output times)."""
    text, stat = path.read_text(), path.stat()
    assert old == "" or text.count(old) == 1, f"{path}: {old!r} occurs {text.count(old)} times"
    path.write_text(text + new if old == "" else text.replace(old, new))
    try:
        yield path
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
