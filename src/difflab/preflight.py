"""Checks the Snakefile runs before any job: Slurm environment and job-status query, the CUDA warning for the
full profile, and corrupt checkpoints set aside so their jobs rerun. Each returns its findings as text (or
raises DifflabError); rules/common.smk prints them and stops where needed. Imports no torch at module level.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from difflab import DifflabError


def missing_slurm_variables(resources: list[tuple[str, str]]) -> list[str]:
    """One line per slurm_* resource of a profile whose value is `$NAME` with NAME unset in the environment.

    `resources`: (resource name, value text) pairs from the profile's default-resources and set-resources."""
    lines = []
    for name, value in resources:
        if value.startswith("$") and not os.environ.get(value[1:]):
            lines.append(f"profiles/slurm needs the environment variable {value[1:]} (resource {name}); "
                         f"e.g. export {value[1:]}=<your {name.removeprefix('slurm_')}>")
    return lines


def set_aside_corrupt_checkpoints(results: str | Path = "results") -> list[str]:
    """Rename every *.pt under `results` that fails its checksum to *.corrupt, so Snakemake reruns the job that
    makes it instead of a later job failing on it; one message per file set aside."""
    from difflab.io import quarantine_corrupt

    checkpoints = [p for p in Path(results).rglob("*.pt") if not p.name.startswith(".")]
    return [f"{path}: {problem}; set aside as {path.name}.corrupt, it will be recomputed"
            for path, problem in quarantine_corrupt(checkpoints)]


def cuda_warning() -> str | None:
    """The warning for `profiles/default` (full-size training) on a machine without CUDA; None when CUDA is there."""
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    return ("WARNING: profile 'default' (the full CS180 settings) on a machine without CUDA.\n"
            "  Expected cost on a 2-core CPU: about 8 hours of training (denoiser D=128 ~30 img/s, DDPMs D=64\n"
            "  ~140 img/s) and days of sampling for FID on 10k images per evaluation epoch.\n"
            "  For a CPU-sized run (~30 min) use:  snakemake --workflow-profile profiles/laptop\n"
            "  For a 5-minute check use:           snakemake --workflow-profile profiles/smoke")


def slurm_status_query(command: str) -> list[str]:
    """The job-status query the Slurm executor polls with (`sacct` or `squeue`), for a job name no job has."""
    since = f"{datetime.now() - timedelta(days=2):%Y-%m-%dT%H:00}"
    queries = {"sacct": ["sacct", "-X", "--parsable2", "--clusters", "all", "--noheader", "--format=JobIdRaw,State",
                         "--starttime", since, "--endtime", "now", "--name", "difflab-status-check"],
               "squeue": ["squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "difflab-status-check"]}
    if command not in queries:
        raise DifflabError(f"slurm-status-command is {command!r}; expected sacct or squeue")
    return queries[command]


def check_slurm_status_command(command: str = "sacct") -> None:
    """Run the executor's status query once. When it fails the Slurm executor drops the jobs it waits for and
    waits forever, printing nothing; raise DifflabError with its error and the remedy instead."""
    query = slurm_status_query(command)
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=60)
        problem = done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr.strip() else None
        problem = problem or (f"exit status {done.returncode}" if done.returncode else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise DifflabError(
            f"the job status query `{' '.join(query[:2])} ...` failed ({problem}); the Slurm executor\n"
            f"  would wait forever for its first job. sacct needs job accounting (slurmdbd); on a cluster without it\n"
            f"  add `slurm-status-command: squeue` to profiles/slurm/config.yaml (or pass --slurm-status-command squeue).")
