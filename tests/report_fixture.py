"""A small report project for the report tests: a .qmd, snippets, a PNG, an animated GIF and a manifest.

Laid out like the repository (report/, results/report/snippets/, results/figures/), with the real
report/style.css and report/template.html copied in, so the fixture renders through the real frame.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

FIXTURE_QMD = """\
---
title: "Fixture report"
toc: true
toc-title: Contents
---

Opening text.

# Part A: Fixture {#part-a}

## 1.1 Forward process {#a-forward}

The process is $x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$; see @fig-noisy and @tbl-scores.

{{< include results/report/snippets/forward.md >}}

## 2.5 Reverse process GIF {#b-gif}

{{< include results/report/snippets/gif.md >}}

# Run manifest {#manifest}

{{< include results/report/snippets/manifest.md >}}
"""

FORWARD_SNIPPET = """\
The fixture snippet sentence, with a digit in [0, 1].

![A clean digit, values in [0, 1]](results/figures/digit.png){#fig-clean width=30%}

| noise level | PSNR |
|---:|---:|
| 0.5 | 20.10 |
| 1.0 | 14.20 |

: Scores of the fixture {#tbl-scores}

![The same digit, noisy](results/figures/noisy.png){#fig-noisy}
"""

GIF_SNIPPET = """\
The reverse process of @fig-clean, animated:

![Reverse process](results/figures/reverse.gif){#fig-gif}
"""

HEADINGS = ["Part A: Fixture", "1.1 Forward process", "2.5 Reverse process GIF", "Run manifest"]


def fixture_manifest(profile: str) -> dict:
    return {
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": True,
        "profile": profile,
        "device": "Fixture GPU 9000",
        "device_type": "cuda",
        "cuda_version": "12.8",
        "packages": {"torch": "2.14.1", "numpy": "2.3.0"},
        "python": "3.11.7",
        "platform": "Linux-fixture",
        "config": {"seed": 180, "report": {"title": "Fixture title from config"}},
        "config_sha256": "f" * 64,
        "seed": 180,
        "started_utc": "2026-01-02T03:04:05+00:00",
    }


def digit(size: int = 28) -> np.ndarray:
    """A blocky '7' as uint8, so the PNG is small and its pixels are easy to recognise."""
    img = np.zeros((size, size), dtype=np.uint8)
    img[5:8, 6:22] = 255
    for row in range(8, 24):
        col = 21 - (row - 8) // 2
        img[row, col - 1:col + 2] = 255
    return img


def write_fixture_project(root: Path, profile: str = "smoke") -> dict[str, Path]:
    """Write the fixture project under `root`; returns the paths the tests use."""
    (root / "report").mkdir(parents=True, exist_ok=True)
    for name in ("style.css", "template.html"):
        shutil.copyfile(REPO / "report" / name, root / "report" / name)
    qmd = root / "report" / "index.qmd"
    qmd.write_text(FIXTURE_QMD)

    figures = root / "results" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    clean = digit()
    Image.fromarray(clean).save(figures / "digit.png")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 60, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(figures / "noisy.png")
    frames = [Image.fromarray((clean * (k / 3)).astype(np.uint8)).convert("P") for k in range(4)]
    frames[0].save(figures / "reverse.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

    snippets = root / "results" / "report" / "snippets"
    snippets.mkdir(parents=True, exist_ok=True)
    (snippets / "forward.md").write_text(FORWARD_SNIPPET)
    (snippets / "gif.md").write_text(GIF_SNIPPET)

    manifest = root / "results" / "manifest.json"
    manifest.write_text(json.dumps(fixture_manifest(profile)))

    benchmarks = root / "results" / "benchmarks"
    (benchmarks / "train").mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (benchmarks / "train" / "epoch_1.tsv").write_text(
        header + "12.5000\t0:00:12\t512.25\t900.0\t500.0\t505.0\t1.0\t2.0\t95.0\t11.75\n")
    (benchmarks / "report.tsv").write_text(
        header + "1.0000\t0:00:01\t100.00\t200.0\t90.0\t95.0\t0.0\t0.5\t50.0\t0.50\n"
        + "3.0000\t0:00:03\tNA\t200.0\t90.0\t95.0\t0.0\t0.5\t50.0\t1.50\n")

    return {"root": root, "qmd": qmd, "manifest": manifest, "benchmarks": benchmarks, "snippets": snippets,
            "png": figures / "digit.png", "gif": figures / "reverse.gif", "out": root / "results" / "report" / "index.html"}
