import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def root() -> Path:
    return ROOT


def snakemake_cmd(*args: str) -> list[str]:
    """Snakemake from the interpreter running the tests (the project's venv)."""
    return [sys.executable, "-m", "snakemake", *args]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env
