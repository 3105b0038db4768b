"""Write the tiny random IF-like pipeline (stage I with T5 and tokenizer, and stage II; tests/helpers/deepfloyd_fixture.py)
to FOLDER and a config overlay FOLDER/overlay.yaml that points part_a.deepfloyd at it, for a CPU run of the real Part A
DAG on the DeepFloyd backend (noise images; README "DeepFloyd IF"):

    python scripts/deepfloyd_tiny.py /tmp/if-tiny
    snakemake --workflow-profile profiles/smoke --configfile config/deepfloyd.yaml /tmp/if-tiny/overlay.yaml --cores 2
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.deepfloyd_fixture import save_tiny_pipeline, save_tiny_stage_2  # noqa: E402


def main(folder: str) -> Path:
    out = Path(folder).resolve()
    stage_1 = save_tiny_pipeline(out / "IF-I-tiny")
    stage_2 = save_tiny_stage_2(out / "IF-II-tiny")
    overlay = out / "overlay.yaml"
    overlay.write_text(
        "# the tiny random IF-like pipeline of scripts/deepfloyd_tiny.py: the DeepFloyd DAG on any device, noise images\n"
        "# (device stays the config's: a change of the global `device` key would rerun Part B too)\n"
        "part_a:\n"
        "  backend: deepfloyd\n"
        "  sample_step_counts: [5, 10]\n"
        "  num_samples: 2\n"
        "  illusion_num_seeds: 2\n"
        "  batch_size: 16\n"
        "  deepfloyd:\n"
        f"    model_dir: {stage_1}\n"
        '    prompt_embeds: ""\n'
        "    stage_2: true\n"
        f"    stage_2_dir: {stage_2}\n"
        "    stage_2_steps: 2\n")
    return overlay


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "results/if-tiny"))
