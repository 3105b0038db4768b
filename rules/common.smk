# Validation and paths only: the config is validated once here, each job's settings are cut from it
# (difflab.settings), and the paths of every stage are named once. Preflight checks live in difflab.workflow.
# Threads: the three training chains share the cores; the classifier uses all of them; the other jobs use one
# thread each and run side by side, which on a small CPU beats oversubscribing cores with intra-op threads.

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from difflab import DifflabError, settings
from difflab.config import deepfloyd_weight_errors
from difflab.jobserver import start_server as start_jobserver, stop_from_snakefile as stop_jobserver
from difflab.workflow import (
    check_slurm_status_command,
    cuda_warning,
    is_dry_run,
    missing_slurm_variables,
    preflight,
    set_aside_corrupt_checkpoints,
)

try:
    preflight(workflow, config)  # config.yaml < profile's configfile < --configfile < --config, then validation
except DifflabError as exc:
    for line in str(exc).splitlines():
        print(f"difflab: config error: {line}", file=sys.stderr)
    sys.exit(1)

# Every job runs the package with the interpreter that runs Snakemake (the project's venv).
DIFFLAB = f"{sys.executable} -m difflab"
KINDS = ["denoiser", "time", "class"]
# Threads of the jobs that use the whole machine (training, the classifier): --cores of a local run.
# Under a cluster executor the submitting process has no --cores (`workflow.cores` raises) and the jobs on
# the nodes get `--cores all` (the whole node, not their allocation): there these rules take the threads
# profiles/slurm sets (set-threads reaches the jobs too), else 1 on both sides.
ALL_CORES = (workflow.resource_settings.cores or 1) if workflow.is_main_process else 1
# Threads of one training epoch job: the cores split between the three chains, which train side by side (on 2
# cores, two one-thread epochs at once trained 1.25x the images per second of one epoch on both: README "Performance").
TRAIN_THREADS = max(1, ALL_CORES // len(KINDS))


# --- settings: each job gets exactly the config keys it reads (difflab.settings) ------------------------------


def settings_json(job):
    """The JSON text of job `job`'s settings; Snakemake reruns a job when this text changes."""
    return settings.settings_json(config, job)


# --- paths, by stage ----------------------------------------------------------------------------------------

MNIST = "results/data/mnist.npz"
CLASSIFIER = "results/models/classifier.pt"


def kept_epochs(kind):
    """Epochs whose checkpoints are kept: the grid/evaluation epochs and the final one."""
    section = config["part_b"]["denoiser" if kind == "denoiser" else "ddpm"]
    listed = section["grid_epochs" if kind == "denoiser" else "eval_epochs"]
    return sorted(set(listed) | {section["epochs"]})


def final_epoch(kind):
    return config["part_b"]["denoiser" if kind == "denoiser" else "ddpm"]["epochs"]


def kept_checkpoint(kind, epoch):
    return f"results/models/{kind}/epoch_{epoch}.pt"


def final_checkpoint(kind):
    return kept_checkpoint(kind, final_epoch(kind))


# Guidance scales of the CFG sweep by their file-name text: 5.0 -> "5", 2.5 -> "2.5". The sampling job gets the
# number itself from this table, and the FID job reads it from the samples file.
CFG_SCALES = {f"{float(g):g}": float(g) for g in config["part_b"]["ddpm"]["cfg_sweep"]}


def fid_csv(name):
    """results/metrics/fid/<name>.csv: `time_epoch_5`, `class_epoch_20`, `cfg_guidance_5`, `floor`."""
    return f"results/metrics/fid/{name}.csv"


# --- preflight (difflab.workflow): only where jobs are planned and submitted ---------------------------------


def slurm_resources():
    """The slurm_* resources a Slurm profile sets, as (name, text) pairs from its default-resources and
    set-resources (the GPU partition is set per rule); empty for local runs."""
    args = getattr(workflow.resource_settings.default_resources, "args", None) or []
    pairs = [tuple(arg.split("=", 1)) for arg in args if "=" in arg]
    for resources in workflow.resource_settings.overwrite_resources.values():
        pairs += [(name, str(getattr(value, "raw", value))) for name, value in resources.items()]
    return [(name, value) for name, value in pairs if name.startswith("slurm_")]


# Inside a Slurm job the executor clears SLURM_* variables and re-reads this file: jobs must neither check the
# submission environment nor touch shared outputs, so these run in the main process only. Corrupt checkpoints
# are set aside here, before Snakemake plans, so that their jobs are planned again.
if workflow.is_main_process:
    for line in missing_slurm_variables(slurm_resources()):
        print(f"difflab: config error: {line}", file=sys.stderr)
        sys.exit(1)
    if config["part_a"]["backend"] == "deepfloyd":  # weights on disk (never downloaded); a dry run only warns
        for line in deepfloyd_weight_errors(config["part_a"]["deepfloyd"]):
            print(f"difflab: {'warning (dry run)' if is_dry_run(workflow) else 'config error'}: {line}", file=sys.stderr)
            if not is_dry_run(workflow):
                sys.exit(1)
    for line in set_aside_corrupt_checkpoints("results"):
        print(f"difflab: {line}", file=sys.stderr)
    if config["profile"] == "default" and not slurm_resources():
        warning = cuda_warning()
        if warning:
            print(f"difflab: {warning}", file=sys.stderr)


onstart:
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        try:
            check_slurm_status_command(getattr(workflow.executor_settings, "status_command", None) or "sacct")
        except DifflabError as exc:
            print(f"difflab: slurm error: {exc}", file=sys.stderr)
            sys.exit(1)
    # Local runs: one pre-warmed process forks every `python -m difflab` job (README "Start-up"; off with
    # DIFFLAB_JOBSERVER=off); stopped by the Snakefile's onsuccess/onerror.
    start_jobserver(".", workflow.executor_plugin.name if workflow.executor_plugin else None)
    Path("results/logs").mkdir(parents=True, exist_ok=True)
    Path("results/logs/run_started_utc.txt").write_text(datetime.now(timezone.utc).isoformat(timespec="seconds"))
