"""The whole DAG with Part A on the DeepFloyd backend, on the tiny random IF-like pipeline (scripts/deepfloyd_tiny.py:
stage I with its T5 encoder, and stage II), on the CPU, in a temporary copy of the repository: the prompt-embedding
rule encodes the config's prompts, every Part A experiment and figure runs, and the rendered report names the backend
and model and shows n/a where the MNIST classifier would be needed. Part B runs with the smoke settings.
About 9 minutes on 2 shared cores (measured), so it is marked e2e and not part of the quick unit run."""

import json
import subprocess
import sys

import pytest

from conftest import copy_of_repository, snakemake_cmd, subprocess_env

pytestmark = pytest.mark.e2e

PART_A = ["sampling", "forward", "blur", "one_step", "iterative", "benchmark", "samples", "cfg", "spacing", "sdedit",
          "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids", "illusions"]


def test_part_a_dag_on_the_tiny_deepfloyd_pipeline(tmp_path_factory, mnist_npz):
    work = copy_of_repository(tmp_path_factory.mktemp("deepfloyd") / "difflab")
    env = subprocess_env(work / "src")
    overlay = subprocess.run([sys.executable, "scripts/deepfloyd_tiny.py", str(work.parent / "if-tiny")], cwd=work,
                             capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1]
    result = subprocess.run(snakemake_cmd("--workflow-profile", "profiles/smoke", "--configfile", "config/deepfloyd.yaml",
                                          overlay, "--cores", "2"), cwd=work, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    results = work / "results"
    assert (results / "models/deepfloyd/prompt_embeds.pt").is_file()  # the embedding rule ran (no precomputed dict)
    for name in PART_A:
        facts = json.loads((results / "experiments/part_a" / name / "facts.json").read_text())
        assert facts["backend"] == "deepfloyd" and facts["model_id"] == "DeepFloyd/IF-I-L-v1.0"
        assert list((results / "figures/part_a" / name).glob("*.png")), name
    assert json.loads((results / "experiments/part_a/sampling/facts.json").read_text())["stage_2"].startswith("yes")
    html = (results / "report/index.html").read_text()
    assert "DeepFloyd IF stage I (DeepFloyd/IF-I-L-v1.0)" in html and "n/a" in html
    assert "MNIST test images" not in html.split('id="part-b"')[0]  # Part A names the photos instead
