"""Part B job settings: fields are real config keys, each key reaches only the jobs that read it (precise reruns),
the job lists agree, and the CSV summaries and figures run without torch."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from difflab.commands.part_b import INPUTS
from difflab.experiments.part_b import EXPERIMENTS
from difflab.figures.part_b import FIGURES
from difflab.settings import JOBS, config_keys, settings_class, settings_dict

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(EXPERIMENTS)


def part_b_jobs() -> list[str]:
    settings_class("part_b.denoiser")  # loads every settings module
    return sorted(name for name in JOBS if name.startswith("part_b."))


def readers(key: str) -> set[str]:
    return {name for name in part_b_jobs() if key in config_keys(name).values()}


def test_every_field_is_a_key_of_the_config():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in part_b_jobs():
        settings_dict(config, name)  # KeyError if a field named a key the config lacks


def test_each_key_reaches_only_the_jobs_that_read_it():
    assert readers("part_b.ddpm.gif_frames") == {"part_b.time_gif", "part_b.class_gif"}
    assert readers("part_b.denoiser.blur_holdout") == {"part_b.ood"}
    assert readers("part_b.ddpm.cfg_sweep") == {"part_b.cfg"}
    assert readers("part_b.ddpm.time_grid_samples") == {"part_b.time_grids", "part_b.time_gif"}
    assert not any(key.startswith(("part_a.", "report.")) for name in part_b_jobs() for key in config_keys(name).values())


def test_the_job_lists_agree():
    assert part_b_jobs() == sorted(f"part_b.{name}" for name in NAMES)
    assert list(INPUTS) == NAMES and list(FIGURES) == NAMES
    rules = (ROOT / "rules" / "experiments" / "part_b.smk").read_text()
    listed = re.search(r"PART_B_EXPERIMENTS = \[(.*?)\]", rules).group(1)
    assert re.findall(r'"(\w+)"', listed) == NAMES


def test_summaries_and_figures_import_no_torch(tmp_path):
    code = (
        "import sys, json\n"
        "from difflab.commands.part_b import cli\n"
        "from difflab.metrics.tables import write_metrics\n"
        f"out = {str(tmp_path)!r}\n"
        "rows = lambda e, g, v: [{'experiment': 'cfg_sweep', 'model': 'class', 'epoch': 2, 'parameter': f'guidance={g}', 'n': 8,"
        " 'metric': m, 'value': x, 'extractor': 'mnist-classifier(width=8)'} for m, x in (('fid', v), ('class_accuracy', 0.5))]\n"
        "paths = []\n"
        "for g, v in ((0, 3.0), (5, 2.0)):\n"
        "    paths.append(f'{out}/g{g}.csv'); write_metrics(paths[-1], rows('cfg_sweep', g, v))\n"
        "cli(['run', 'cfg_tradeoff', '--settings', '{}', '--metrics', *paths, '--out-dir', f'{out}/exp', '--metrics-out', f'{out}/m.csv'])\n"
        "cli(['figure', 'cfg_tradeoff', '--result-dir', f'{out}/exp', '--out-dir', f'{out}/fig'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(json.load(open(f'{out}/exp/facts.json'))['best_guidance'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "5"
    assert (tmp_path / "fig" / "cfg_tradeoff.png").is_file() and (tmp_path / "fig" / "cfg_table.md").is_file()
