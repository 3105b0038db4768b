"""Atomic file writes, checksums and small JSON helpers.

Every artifact is written to a temporary name in the same folder, flushed to disk with fsync and then
renamed over the target. A killed process therefore leaves either the old file or the new one, never a
half-written file that a rerun would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from difflab import DifflabError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success fsync it and rename it to `target`.

    On any exception the temporary file is removed and `target` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file as 0600; give it the mode a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every file system allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DifflabError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DifflabError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def stderr_logger(prefix: str) -> Callable[[str], None]:
    """A `log(message)` that prints "<prefix>: message" to stderr at once (progress notes of one verb)."""

    def log(message: str) -> None:
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)

    return log


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON form (sorted keys, no spaces): equal configs hash equal."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode("utf-8"))


# ----------------------------------------------------------------------------- checksummed files
# Layout: the payload's bytes, then b"\nDIFFLAB-SHA256:" and the 64 hex digits of the payload's SHA-256.

CHECKSUM_TRAILER = b"\nDIFFLAB-SHA256:"
CHECKSUM_TRAILER_LEN = len(CHECKSUM_TRAILER) + 64


def with_checksum(payload: bytes) -> bytes:
    return payload + CHECKSUM_TRAILER + sha256_bytes(payload).encode("ascii")


def split_checksum(data: bytes) -> tuple[bytes, str | None]:
    """(payload, None) if `data` ends in a matching SHA-256 trailer, else (b"", what is wrong)."""
    payload, trailer = data[:-CHECKSUM_TRAILER_LEN], data[-CHECKSUM_TRAILER_LEN:]
    if not trailer.startswith(CHECKSUM_TRAILER):
        return b"", "no checksum trailer: truncated or not a difflab file"
    if sha256_bytes(payload) != trailer[len(CHECKSUM_TRAILER):].decode("ascii", "replace"):
        return b"", "checksum mismatch: corrupted"
    return payload, None


def quarantine_corrupt(paths: list[str | os.PathLike]) -> list[tuple[Path, str]]:
    """Rename each checksummed file that fails its check to `<name>.corrupt` so it is recomputed, never used.

    Returns (path, problem) for each one moved aside. The workflow calls this before planning: Snakemake
    then sees the file as missing and reruns the job that makes it (and, by modification time, the jobs
    downstream). The bad bytes are kept beside it for inspection rather than deleted.
    """
    moved = []
    for path in map(Path, paths):
        _, problem = split_checksum(path.read_bytes())
        if problem:
            os.replace(path, path.with_name(path.name + ".corrupt"))
            moved.append((path, problem))
    return moved
