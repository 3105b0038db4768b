"""Workflow preflight, run by the Snakefile before any job is planned: the layered config, validated once, and
the checks of the environment (Slurm variables and status query, the CUDA warning, corrupt checkpoints).

`preflight(workflow, config)` runs once per Snakefile parse:

1. In the main Snakemake process (the one started from the command line), it layers the config files in
   this order, later layers winning key by key (nested mappings merged, as Snakemake's `update_config` does):

       config/config.yaml                      the Snakefile's `configfile:`
     < the profile's `configfile:` files       e.g. config/laptop.yaml of profiles/laptop
     < the command line's --configfile files   in the order given
     < the command line's --config KEY=VALUE   pairs

   Snakemake itself treats a profile's `configfile:` as a default of the `--configfile` option, so one extra
   `--configfile my.yaml` used to drop the profile's files (a laptop run with the full GPU sizes). The same
   file list is handed to the jobs an executor spawns (Slurm): Snakemake starts them with
   `--configfiles <workflow.overwrite_configfiles> --config ...` and they re-read the Snakefile without any
   profile, so they rebuild the same config.
2. In every process it validates the config (`difflab.config.validate_config`, which fills defaults); the
   cross-key limits, which import torch, only in the main process, which has checked them for the jobs.

Errors are DifflabError with one line per problem; the Snakefile prints them and stops. The environment checks
below return their findings as text (or raise DifflabError); rules/common.smk prints them.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from difflab import DifflabError
from difflab.config import validate_config


def snakemake_cli_argv(argv: list[str] | None = None) -> list[str] | None:
    """The command-line arguments when this process is Snakemake's CLI (`snakemake ...` or
    `python -m snakemake ...`), else None (e.g. the Python API, where no profile is read from a command line)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return None
    program = Path(argv[0])
    if program.name == "snakemake" or (program.name == "__main__.py" and program.parent.name == "snakemake"):
        return list(argv[1:])
    return None


def profile_and_cli_configfiles(argv: list[str]) -> tuple[list[Path], list[Path], list[Path]]:
    """(the active profiles' YAML files, their `configfile:` entries, the command line's --configfile files).

    The profiles are found by Snakemake's own argument parsing (`snakemake.cli.parse_args`: --profile, then
    --workflow-profile or the implicit profiles/default); the profiles' `configfile:` is what that parser
    gives with no command-line arguments, and the command line's files what it gives without profiles.
    """
    from snakemake.cli import get_argument_parser, parse_args

    with contextlib.redirect_stderr(io.StringIO()):  # parse_args repeats "Using workflow specific profile ..."
        parser, _ = parse_args(argv)
        profiles = [Path(p) for p in getattr(parser, "_default_config_files", [])]
        from_profiles = list(parser.parse_args([]).configfile) if profiles else []
        from_cli = list(get_argument_parser().parse_args(argv).configfile)
    return profiles, [Path(p) for p in from_profiles], [Path(p) for p in from_cli]


def is_dry_run(workflow) -> bool:
    """Whether this is `snakemake -n` (the executor is not chosen yet when the Snakefile is parsed, so the command
    line is read with Snakemake's own parser); False outside Snakemake's CLI."""
    argv = snakemake_cli_argv()
    if argv is None:
        return bool(getattr(workflow, "dryrun", False))
    from snakemake.cli import get_argument_parser

    with contextlib.redirect_stderr(io.StringIO()):
        return bool(get_argument_parser().parse_args(argv).dryrun)


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load(path: Path, what: str) -> dict:
    from snakemake.common.configfile import load_configfile

    if not path.is_file():
        raise DifflabError(f"{_shown(path)}: config file not found ({what})")
    try:
        return load_configfile(str(path)) or {}
    except Exception as exc:  # noqa: BLE001 -- Snakemake's WorkflowError or a YAML error, as one line
        raise DifflabError(f"{_shown(path)}: not a valid config file ({what}): {(str(exc).splitlines() or [''])[0]}") from None


def layer_config(workflow, config: dict, argv: list[str]) -> list[str]:
    """Rebuild `config` in place as config.yaml < profile files < --configfile files < --config (module
    docstring) and make `workflow.overwrite_configfiles` (what spawned jobs get as --configfiles) the profile
    files followed by the command line's. Returns the layers, one label each, for the log line."""
    from snakemake.utils import update_config

    profiles, from_profiles, from_cli = profile_and_cli_configfiles(argv)
    settings = workflow.config_settings
    files = [p.absolute() for p in from_profiles + from_cli]
    # workflow.configfiles: the command line's files, then those the Snakefile's `configfile:` loaded
    snakefile_files = [Path(p).absolute() for p in workflow.configfiles[len(settings.configfiles):]]
    base_files = [] if settings.replace_workflow_config else snakefile_files
    origin = {p.absolute(): f"profile {_shown(profiles[-1].parent)}" for p in from_profiles} if profiles else {}
    if files != [Path(p) for p in settings.configfiles]:
        overwrite: dict = {}
        for path in files:
            update_config(overwrite, _load(path, origin.get(path, "--configfile")))
        if settings.config:
            update_config(overwrite, dict(settings.config))
        layered: dict = {}
        for path in base_files:
            update_config(layered, _load(path, "the Snakefile's configfile"))
        update_config(layered, overwrite)
        config.clear()
        config.update(layered)
        settings.configfiles = files
        settings.overwrite_config = overwrite
        workflow.configfiles = files + snakefile_files
    labels = [_shown(p) for p in base_files]
    labels += [f"{_shown(p)} ({origin.get(p, '--configfile')})" for p in files]
    if settings.config:
        pairs = settings.config_args if isinstance(settings.config_args, (list, tuple)) else [str(settings.config_args)]
        labels.append("--config " + " ".join(pairs))
    return labels


def preflight(workflow, config: dict, root: str | os.PathLike | None = None) -> None:
    """Layer the config files (main process, Snakemake CLI only) and validate the result; see the module
    docstring. `root` is the repository (default: the Snakefile's folder, `workflow.basedir`). Raises
    DifflabError naming the file or config key."""
    root = Path(workflow.basedir if root is None else root)
    if workflow.is_main_process:
        argv = snakemake_cli_argv()
        if argv is not None:
            layers = layer_config(workflow, config, argv)
            if len(layers) > 1:
                print("difflab: config = " + " < ".join(layers), file=sys.stderr)
    validate_config(config, root / "config" / "schema.yaml", root=root, check_limits=workflow.is_main_process)


# --- checks of the environment: only where jobs are planned and submitted --------------------------------------


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
            "  Expected cost on a 2-core CPU: about 8 hours of training in fp32 (denoiser D=128 ~30 img/s, DDPMs\n"
            "  D=64 ~140 img/s; about half in bf16 on a CPU with bf16 instructions) and days of sampling for FID on\n"
            "  10k images per evaluation epoch.\n"
            "  For a CPU-sized run (~15 min) use:  snakemake --workflow-profile profiles/laptop\n"
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
