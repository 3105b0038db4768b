"""A small report project for the report tests, laid out like the repository.

report/index.qmd includes two section files (report/sections/part_a.qmd, part_b.qmd: prose with
`{{< var part.name.var >}}` in text and captions; part_a.qmd itself includes a generated table from
results/figures/) and the run table results/report/tables/manifest.md. Each experiment's facts.json lies under
results/experiments/<part>/<name>/, next to a PNG, an animated GIF, Snakemake benchmark files and a manifest.
The real report/style.css and report/template.html are copied in, so the fixture renders through the real frame.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

TITLE = "Fixture title from config"  # config key report.title, passed to render_report by the caller

FIXTURE_QMD = """\
---
title: "Fixture report"
toc: true
toc-title: Contents
---

Opening text.

{{< include report/sections/part_a.qmd >}}

{{< include report/sections/part_b.qmd >}}

# Run manifest {#manifest}

{{< include results/report/tables/manifest.md >}}
"""

PART_A_SECTION = """\
# Part A: Fixture {#part-a}

## 1.1 Forward process {#a-forward}

The process is $x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$; see @fig-noisy and @tbl-scores.
The fixture section sentence, with a digit in [0, 1] noised to t = {{< var part_a.forward.levels >}}.

![A clean digit, values in [0, 1]](results/figures/digit.png){#fig-clean width=30%}

{{< include results/figures/scores.md >}}

![The same digit, noisy (σ = {{< var part_a.forward.noise_std >}})](results/figures/noisy.png){#fig-noisy}
"""

SCORES_TABLE = """\
| noise level | PSNR |
|---:|---:|
| 0.5 | 20.10 |
| 1.0 | 14.20 |

: Scores of the fixture {#tbl-scores}
"""

PART_B_SECTION = """\
## 2.5 Reverse process GIF {#b-gif}

The reverse process of @fig-clean, animated over {{< var part_b.class_gif.frames >}} frames:

![Reverse process](results/figures/reverse.gif){#fig-gif}
"""

# the facts.json of each experiment: {part: {name: {var: value}}}, as collect_variables nests them
FACTS = {
    "part_a": {"forward": {"levels": "250, 500 and 750", "noise_std": 0.66, "seed": 180}},
    "part_b": {"class_gif": {"frames": 4, "stable": True}},
}

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
        "config": {"seed": 180, "report": {"title": TITLE}},
        "config_sha256": "f" * 64,
        "seed": 180,
        "started_utc": "2026-01-02T03:04:05+00:00",
        "finished_utc": "2026-01-02T03:11:17+00:00",
    }


def digit(size: int = 28) -> np.ndarray:
    """A blocky '7' as uint8, so the PNG is small and its pixels are easy to recognise."""
    img = np.zeros((size, size), dtype=np.uint8)
    img[5:8, 6:22] = 255
    for row in range(8, 24):
        col = 21 - (row - 8) // 2
        img[row, col - 1:col + 2] = 255
    return img


def write_fixture_project(root: Path, profile: str = "smoke") -> dict[str, Path | list[Path]]:
    """Write the fixture project under `root` (run tables not yet written); returns the paths the tests use."""
    (root / "report" / "sections").mkdir(parents=True, exist_ok=True)
    for name in ("style.css", "template.html"):
        shutil.copyfile(REPO / "report" / name, root / "report" / name)
    qmd = root / "report" / "index.qmd"
    qmd.write_text(FIXTURE_QMD)
    (root / "report" / "sections" / "part_a.qmd").write_text(PART_A_SECTION)
    (root / "report" / "sections" / "part_b.qmd").write_text(PART_B_SECTION)

    figures = root / "results" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    clean = digit()
    Image.fromarray(clean).save(figures / "digit.png")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 60, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(figures / "noisy.png")
    frames = [Image.fromarray((clean * (k / 3)).astype(np.uint8)).convert("P") for k in range(4)]
    frames[0].save(figures / "reverse.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (figures / "scores.md").write_text(SCORES_TABLE)

    facts = []
    for part, experiments in FACTS.items():
        for name, values in experiments.items():
            path = root / "results" / "experiments" / part / name / "facts.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
            facts.append(path)

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

    return {"root": root, "qmd": qmd, "section_a": root / "report" / "sections" / "part_a.qmd", "facts": facts,
            "manifest": manifest, "benchmarks": benchmarks, "tables": root / "results" / "report" / "tables",
            "png": figures / "digit.png", "gif": figures / "reverse.gif", "out": root / "results" / "report" / "index.html"}
