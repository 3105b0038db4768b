"""The run manifest, results/manifest.json: what produced these results.

git commit and dirty flag, package versions, Python and platform, device name and CUDA version, the
profile, the resolved config and its SHA-256 (canonical JSON), the seed, and start and end times.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from difflab.io import canonical_json_hash

PACKAGES = ["difflab", "torch", "torchvision", "torchmetrics", "numpy", "pandas", "matplotlib", "snakemake",
            "pillow", "scipy", "pypandoc_binary"]


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository at `root`, or (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_info(requested: str) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    use_cuda = cuda and requested in ("auto", "cuda")
    return {
        "device": torch.cuda.get_device_name(0) if use_cuda else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "device_type": "cuda" if use_cuda else "cpu",
        "cuda_version": torch.version.cuda if use_cuda else None,
        "cuda_available": cuda,
    }


def build_manifest(config: dict, started_utc: str | None, root: Path = Path(".")) -> dict:
    commit, dirty = git_state(root)
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "profile": config.get("profile"),
        **device_info(config.get("device", "auto")),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config": config,
        "config_sha256": canonical_json_hash(config),
        "seed": config.get("seed"),
        "started_utc": started_utc,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
