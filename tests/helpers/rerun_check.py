"""What Snakemake would rerun after one edit: a dry run of a finished workflow copy, the planned rules as a set."""

import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

from conftest import snakemake_cmd, subprocess_env

JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)*)", re.MULTILINE)
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$", re.MULTILINE)


def dry_run(work: Path, *args: str) -> str:
    """The output of a dry run of the smoke profile in `work`."""
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/smoke", *args), cwd=work,
                            capture_output=True, text=True, env=subprocess_env(work / "src"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    return out


def planned_jobs(out: str) -> set[tuple[str, str]]:
    """(rule, wildcards text) of every job a dry run's output plans, the `all` target left out."""
    jobs = set()
    for rule, body in JOB.findall(out):
        wildcards = WILDCARDS.search(body)
        if rule != "all":
            jobs.add((rule, wildcards.group(1).strip() if wildcards else ""))
    return jobs


def planned_rules(work: Path, *args: str) -> set[str]:
    """The rules a dry run of the smoke profile in `work` would run (the `all` target rule left out)."""
    return {rule for rule, _ in planned_jobs(dry_run(work, *args))}


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


def override(work: Path, key: str, value) -> str:
    """A user config file setting one dotted config key, e.g. override(work, 'part_b.ddpm.gif_frames', 5): its path,
    to pass with --configfile on top of the profile (README "Profiles": the profile's settings stay)."""
    import yaml

    node: dict = {}
    tree = node
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    path = work / f"override_{key.replace('.', '_')}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)
