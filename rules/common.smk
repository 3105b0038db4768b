# Shared helpers: config validation, settings passed to the CLI, epoch bookkeeping.
# Threads: training uses all cores; the other jobs use one thread each and run side by side, which on a
# small CPU beats oversubscribing cores with intra-op threads.

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from difflab import DifflabError
from difflab.workflow import preflight

try:
    preflight(workflow, config)  # config.yaml < profile's configfile < --configfile < --config, then validation
except DifflabError as exc:
    for line in str(exc).splitlines():
        print(f"difflab: config error: {line}", file=sys.stderr)
    sys.exit(1)

# Every job runs the package with the interpreter that runs Snakemake (the project's venv).
DIFFLAB = f"{sys.executable} -m difflab"
PROFILE = config["profile"]
MNIST = "results/data/mnist.npz"
PB = config["part_b"]
PA = config["part_a"]
KINDS = ["denoiser", "time", "class"]
# Threads of the jobs that use the whole machine (training, the classifier): --cores of a local run.
# Under a cluster executor the submitting process has no --cores (`workflow.cores` raises) and the jobs on
# the nodes get `--cores all` (the whole node, not their allocation): there these rules take the threads
# profiles/slurm sets (set-threads reaches the jobs too), else 1 on both sides.
ALL_CORES = (workflow.resource_settings.cores or 1) if workflow.is_main_process else 1


def slurm_resources():
    """The slurm_* resources a Slurm profile sets, as (name, text) pairs from its default-resources and
    set-resources (the GPU partition is set per rule); empty for local runs."""
    args = getattr(workflow.resource_settings.default_resources, "args", None) or []
    pairs = [tuple(arg.split("=", 1)) for arg in args if "=" in arg]
    for resources in workflow.resource_settings.overwrite_resources.values():
        pairs += [(name, str(getattr(value, "raw", value))) for name, value in resources.items()]
    return [(name, value) for name, value in pairs if name.startswith("slurm_")]


def check_slurm_environment():
    """profiles/slurm reads the account and partitions from the environment; say which one is missing.
    Only where jobs are submitted: inside a Slurm job the executor clears SLURM_* variables before it
    starts the job's step, and the values are not needed there."""
    if not workflow.is_main_process:
        return
    for name, value in slurm_resources():
        if value.startswith("$") and not os.environ.get(value[1:]):
            print(f"difflab: config error: profiles/slurm needs the environment variable {value[1:]} "
                  f"(resource {name}); e.g. export {value[1:]}=<your {name.removeprefix('slurm_')}>", file=sys.stderr)
            sys.exit(1)


check_slurm_environment()


def set_aside_corrupt_checkpoints():
    """A truncated or corrupted checkpoint is renamed to *.corrupt before Snakemake plans, so the job that
    makes it is rerun (and the jobs after it) instead of a job failing on it later. Only the main process
    checks: jobs started by an executor (Slurm) re-read this file and must not touch shared outputs."""
    if not workflow.is_main_process:
        return
    from difflab.io import quarantine_corrupt

    checkpoints = [p for p in Path("results").rglob("*.pt") if not p.name.startswith(".")]
    for path, problem in quarantine_corrupt(checkpoints):
        print(f"difflab: {path}: {problem}; set aside as {path.name}.corrupt, it will be recomputed", file=sys.stderr)


set_aside_corrupt_checkpoints()


def warn_if_default_profile_without_cuda():
    """`snakemake --cores all` uses profiles/default: full-size training that wants a GPU."""
    if PROFILE != "default" or slurm_resources():
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        print(
            "difflab: WARNING: profile 'default' (the full CS180 settings) on a machine without CUDA.\n"
            "  Expected cost on a 2-core CPU: about 8 hours of training (denoiser D=128 ~30 img/s, DDPMs D=64\n"
            "  ~140 img/s) and days of sampling for FID on 10k images per evaluation epoch.\n"
            "  For a CPU-sized run (~30 min) use:  snakemake --workflow-profile profiles/laptop\n"
            "  For a 5-minute check use:           snakemake --workflow-profile profiles/smoke",
            file=sys.stderr,
        )


warn_if_default_profile_without_cuda()


def settings_json(section, **extra):
    """The JSON passed as --settings: one config section plus the global keys a job needs."""
    merged = {**section, "seed": config["seed"], "device": config["device"], **extra}
    return json.dumps(merged, sort_keys=True)


def train_settings(wildcards):
    section = PB["denoiser"] if wildcards.kind == "denoiser" else PB["ddpm"]
    return settings_json(section, train_subset=config["data"]["train_subset"])


def kept_epochs(kind):
    """Epochs whose checkpoints are kept: the grid/evaluation epochs and the final one."""
    if kind == "denoiser":
        s = PB["denoiser"]
        return sorted(set(s["grid_epochs"]) | {s["epochs"]})
    s = PB["ddpm"]
    return sorted(set(s["eval_epochs"]) | {s["epochs"]})


def final_epoch(kind):
    return PB["denoiser"]["epochs"] if kind == "denoiser" else PB["ddpm"]["epochs"]


def kept_checkpoint(kind, epoch):
    return f"results/part_b/{kind}/epoch_{epoch}.pt"


def final_checkpoint(kind):
    return kept_checkpoint(kind, final_epoch(kind))


def fmt_number(value):
    """Guidance scales as file-name-safe text: 5.0 -> '5', 2.5 -> '2.5'."""
    return f"{float(value):g}"


CFG_SCALES = [fmt_number(g) for g in PB["ddpm"]["cfg_sweep"]]


def check_slurm_status_command():
    """The Slurm executor polls job states with sacct (or squeue, if the profile says so). When that query
    fails it drops the jobs it was waiting for and waits forever, printing nothing. Run the same query once
    before the first job is submitted and stop with its error instead."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    command = getattr(workflow.executor_settings, "status_command", None) or "sacct"
    since = f"{datetime.now() - timedelta(days=2):%Y-%m-%dT%H:00}"
    query = {"sacct": ["sacct", "-X", "--parsable2", "--clusters", "all", "--noheader", "--format=JobIdRaw,State",
                       "--starttime", since, "--endtime", "now", "--name", "difflab-status-check"],
             "squeue": ["squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "difflab-status-check"]}[command]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=60)
        problem = done.stderr.strip().splitlines()[-1] if done.returncode else None
        problem = problem or (f"exit status {done.returncode}" if done.returncode else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"difflab: slurm error: the job status query `{' '.join(query[:2])} ...` failed ({problem}); the Slurm executor\n"
              f"  would wait forever for its first job. sacct needs job accounting (slurmdbd); on a cluster without it\n"
              f"  add `slurm-status-command: squeue` to profiles/slurm/config.yaml (or pass --slurm-status-command squeue).",
              file=sys.stderr)
        sys.exit(1)


onstart:
    check_slurm_status_command()
    Path("results/logs").mkdir(parents=True, exist_ok=True)
    Path("results/logs/run_started_utc.txt").write_text(datetime.now(timezone.utc).isoformat(timespec="seconds"))
