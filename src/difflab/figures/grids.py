"""Figures: image grids with labels, animated GIFs and line plots (matplotlib, Agg backend).

MNIST digits are 28x28; they are upscaled with nearest-neighbour so pixels stay sharp in the report.
Images are float tensors or arrays in [0, 1] (values outside are clipped for display only).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from difflab.io import atomic_path, write_bytes  # noqa: E402


def to_numpy_images(images) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) tensor/array -> float array (N, H, W) or (N, H, W, 3), clipped to [0, 1]."""
    arr = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=np.float32)
    if arr.ndim == 4:
        arr = arr[:, 0] if arr.shape[1] == 1 else np.transpose(arr, (0, 2, 3, 1))
    return np.clip(arr, 0.0, 1.0)


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: every pixel becomes a factor x factor block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def save_grid(
    path: str | Path,
    images,
    nrow: int,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
    cell_inches: float = 1.1,
) -> None:
    """Save images as a grid of `nrow` rows (filled row by row), with optional per-image titles and row labels."""
    arr = to_numpy_images(images)
    n = arr.shape[0]
    ncol = int(np.ceil(n / nrow))
    fig, axes = plt.subplots(nrow, ncol, figsize=(cell_inches * ncol + (0.8 if row_labels else 0), cell_inches * nrow + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < n:
            ax.imshow(arr[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles is not None and i < len(titles) and titles[i]:
                ax.set_title(titles[i], fontsize=7)
    if row_labels:
        for r, label in enumerate(row_labels[:nrow]):
            axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure atomically as PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def save_gif(path: str | Path, frames: Sequence, nrow: int, scale: int = 3, duration_ms: int = 60, pad: int = 2) -> None:
    """Animated GIF of a batch evolving over time: frames[k] is an (N, 1, H, W) batch shown as a grid."""
    pictures = []
    for frame in frames:
        arr = to_numpy_images(frame)
        n, h, w = arr.shape[:3]
        ncol = int(np.ceil(n / nrow))
        canvas = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
        for i in range(n):
            r, c = divmod(i, ncol)
            canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
        pictures.append(Image.fromarray((upscale_nearest(canvas, scale) * 255).round().astype(np.uint8), mode="L"))
    # Hold the final frame so the result can be seen before the loop restarts.
    durations = [duration_ms] * (len(pictures) - 1) + [1500]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)


def plot_curves(
    path: str | Path,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    markers: bool = False,
) -> None:
    """Line plot of named (x, y) curves."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (x, y) in curves.items():
        ax.plot(x, y, label=name, marker="o" if markers else None, linewidth=1.2 if not markers else 1.5, markersize=4)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
