"""Device choice and seeding shared by every job."""

from __future__ import annotations

import hashlib
import os
from typing import Callable, TypeVar

import torch

from difflab import DifflabError
from difflab.io import stderr_logger

T = TypeVar("T")
log = stderr_logger("difflab")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DifflabError("config key 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name not in {"cpu", "cuda"}:
        raise DifflabError(f"config key 'device' is {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """'NVIDIA H200', or 'CPU x86_64, 2 threads': what a measurement ran on, for benchmark results."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 63-bit seed for one job from the config seed and names (e.g. derive_seed(180, 'train', 'class', 3)).

    Jobs get independent streams while depending only on the config seed, never on scheduling order.
    """
    text = ":".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def make_generator(seed: int, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with derive_seed(seed, *keys), on `device`."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))


def configure_threads() -> None:
    """Use the threads Snakemake granted the job (it exports OMP_NUM_THREADS from `threads:`)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


def enable_determinism() -> None:
    """Deterministic kernels where torch has them (CPU results are bit-identical run to run)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), or an allocator's "out of memory" RuntimeError (CPU, other backends)."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def map_in_chunks(fn: Callable[[int, int], T], n: int, batch_size: int, what: str) -> tuple[list[T], int]:
    """[fn(0, b), fn(b, 2b), ...] over the index range [0, n) in chunks of at most `batch_size`.

    An out-of-memory error halves the failed chunk's size and retries the failed chunk (logged, naming `what`),
    down to 1; any other error propagates. Returns the outputs in order and the chunk size that worked,
    which callers keep for their next call so a too-large batch fails only once.
    """
    outputs: list[T] = []
    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        try:
            outputs.append(fn(start, stop))
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(exc) or stop - start == 1:
                raise
            batch_size = max(1, (stop - start) // 2)
            log(f"out of memory {what}; retrying with batch size {batch_size}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start = stop
    return outputs, batch_size


def start_job(device: str, seed: int) -> tuple[torch.device, int]:
    """The one job start-up every command calls first: the threads Snakemake granted, deterministic kernels
    (bit-identical CPU results; deterministic CUDA kernels where torch has them), and the job's device.

    Args: device: config key `device` (auto | cpu | cuda); seed: config key `seed`.
    Returns (torch.device, seed). Raises DifflabError for 'cuda' without a CUDA device."""
    configure_threads()
    enable_determinism()
    return resolve_device(device), int(seed)
