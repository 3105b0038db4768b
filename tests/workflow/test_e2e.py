"""One real end-to-end run of the smoke profile in a temporary copy of the repository: real Snakemake,
real MNIST, every rule, and the rendered report checked for content and self-containment (and in a real
browser when Chromium is installed)."""

import json
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import ROOT, VENV_BIN, copy_of_repository, snakemake_cmd, subprocess_env
from helpers.rerun_check import dry_run, edited, override, planned_jobs, planned_rules
from difflab.checkpoint import load_checkpoint

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, mnist_npz):
    work = copy_of_repository(tmp_path_factory.mktemp("smoke") / "difflab")
    result = subprocess.run(snakemake_cmd("--workflow-profile", "profiles/smoke", "--cores", "2"),
                            cwd=work, capture_output=True, text=True, env=subprocess_env(work / "src"))
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "e2e_smoke.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-4000:]
    save_reference(work / "results", ROOT / "results" / "smoke_reference")
    return work, result


def save_reference(results, dest):
    """Keep what `make test-slurm` compares its Slurm run against (metrics, manifest, report), so CI need
    not run the local smoke DAG a third time; tests/workflow/test_slurm.py reuses it only for the same clean commit."""
    shutil.rmtree(dest, ignore_errors=True)
    for part in ("metrics", "manifest.json", "report/index.html"):
        (dest / part).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (results / part).is_dir() else shutil.copy2
        copy(results / part, dest / part)


def wait_for_lock(work, process, timeout=300):
    """Until Snakemake holds its lock on `work` (it locks after planning, before the first job)."""
    deadline = time.monotonic() + timeout
    while not any((work / ".snakemake" / "locks").glob("*")):
        assert process.poll() is None, "the first run ended before it took the lock"
        assert time.monotonic() < deadline, "the first run never took Snakemake's lock"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def second_smoke_run(tmp_path_factory, smoke_run):
    """The smoke DAG again in a fresh copy; while it runs, `make smoke` is started in the same folder."""
    work = copy_of_repository(tmp_path_factory.mktemp("smoke_again") / "difflab")
    # Without the job server: the bit-identical test then compares forked jobs (first run) with fresh processes.
    env = subprocess_env(work / "src") | {"DIFFLAB_JOBSERVER": "off"}
    first = subprocess.Popen(snakemake_cmd("--workflow-profile", "profiles/smoke", "--cores", "2"), cwd=work,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for_lock(work, first)
        venv = VENV_BIN.parent
        # The README's way in; -o: never (re)install the venv from inside a test.
        second = subprocess.run(["make", "-o", str(venv / ".difflab-installed"), f"VENV={venv}", "smoke"], cwd=work,
                                capture_output=True, text=True, env=subprocess_env(work / "src"), timeout=300)
        log, _ = first.communicate(timeout=900)
    finally:
        first.kill()
    assert first.returncode == 0, log[-4000:]
    return work, second


def test_report_exists_and_is_self_contained(smoke_run):
    work, result = smoke_run
    html = (work / "results" / "report" / "index.html").read_text()
    assert "difflab: report written to results/report/index.html" in result.stdout + result.stderr
    external = [ref for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) if not ref.startswith(("#", "data:"))]
    assert external == []
    assert html.count("data:image/png;base64,") >= 20
    assert "data:image/gif;base64," in html, "the reverse-process GIF must be embedded"


def test_report_shows_manifest_profile_and_banner(smoke_run):
    work, _ = smoke_run
    manifest = json.loads((work / "results" / "manifest.json").read_text())
    html = (work / "results" / "report" / "index.html").read_text()
    assert manifest["profile"] == "smoke"
    assert manifest["config_sha256"] in html
    assert manifest["git_commit"] in html
    assert "Reduced profile" in html
    for package in ("torch", "snakemake"):
        assert manifest["packages"][package] in html


def test_every_section_has_its_content(smoke_run):
    work, _ = smoke_run
    from difflab.report.markdown import include_paths

    sections = include_paths(work / "report" / "index.qmd")
    assert "report/sections/part_a.qmd" in sections and "report/sections/part_b.qmd" in sections
    for source in sections:
        for included in [source] + (include_paths(work / source) if source.endswith(".qmd") else []):
            assert (work / included).read_text().strip(), f"{included} is empty"


def test_metrics_are_tidy_and_complete(smoke_run):
    work, _ = smoke_run
    columns = ["experiment", "model", "epoch", "parameter", "metric", "value", "n", "extractor"]
    frames = [pd.read_csv(p) for p in sorted((work / "results" / "metrics").rglob("*.csv"))]
    for frame in frames:
        assert list(frame.columns) == columns
    metrics = pd.concat(frames)
    fid = metrics[metrics.metric == "fid"]
    assert set(fid.experiment) >= {"ddpm_time", "ddpm_class", "cfg_sweep", "fid_floor"}
    assert (fid.value >= 0).all()
    steps = fid.experiment.isin(["part_b_time_steps", "part_b_class_steps"])  # part_b.steps.num_images = 32 in smoke
    assert (fid[(fid.experiment != "part_a_spacing") & ~steps].n == 64).all() and (fid[fid.experiment == "part_a_spacing"].n == 16).all()
    assert (fid[steps].n == 32).all() and len(fid[steps]) == 2 * 2 * 3  # models x samplers x step counts
    assert set(metrics[metrics.metric == "kid"].experiment) == set(fid.experiment)  # KID beside every FID
    assert "test_accuracy" in set(metrics.metric)


def test_rerun_has_nothing_to_do(smoke_run):
    work, _ = smoke_run
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/smoke"), cwd=work,
                            capture_output=True, text=True, env=subprocess_env(work / "src"))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_report_in_a_real_browser(smoke_run):
    from helpers.browser_check import browser_missing, check_report
    from difflab.report.markdown import expand_includes, section_headings

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    work, _ = smoke_run
    shot = work / "results" / "report" / "screenshot.png"
    source = expand_includes((work / "report" / "index.qmd").read_text(), work, "report/index.qmd")
    check_report(work / "results" / "report" / "index.html", section_headings(source), shot)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, ROOT / "results" / "e2e_screenshot.png")


def metric_files(work):
    return {p.relative_to(work): p.read_bytes() for p in sorted((work / "results" / "metrics").rglob("*.csv"))}


def test_same_config_and_seed_give_bit_identical_metrics(smoke_run, second_smoke_run):
    (first, _), (second, _) = smoke_run, second_smoke_run
    a, b = metric_files(first), metric_files(second)
    assert len(a) >= 10 and list(a) == list(b)
    assert [name for name in a if a[name] != b[name]] == []
    manifests = [json.loads((w / "results" / "manifest.json").read_text()) for w in (first, second)]
    assert manifests[0]["config_sha256"] == manifests[1]["config_sha256"]
    assert manifests[0]["seed"] == manifests[1]["seed"] == 180


def test_a_second_run_while_one_runs_is_refused_by_the_lock(second_smoke_run):
    _, second = second_smoke_run
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout + second.stderr


# Precise reruns: after the finished smoke run, each edit plans exactly these rules (dry runs; nothing runs).
REPORT_STAGE = {"report_variables", "manifest", "run_tables", "report"}
GUIDED = {"sampling", "cfg", "spacing", "sdedit", "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids", "illusions",
          "hybrid_sweep"}


def test_rerun_after_gif_frames_is_the_gif_and_the_report(smoke_run):
    work, _ = smoke_run
    planned = planned_jobs(dry_run(work, "--configfile", override(work, "part_b.ddpm.gif_frames", 5)))
    assert {rule for rule, _ in planned} == {"part_b_gif", "part_b_figure"} | REPORT_STAGE
    assert {w for rule, w in planned if rule == "part_b_gif"} == {"ddpm=time", "ddpm=class"}


def test_rerun_after_blur_holdout_is_the_ood_table_and_the_report(smoke_run):
    work, _ = smoke_run
    planned = planned_jobs(dry_run(work, "--configfile", override(work, "part_b.denoiser.blur_holdout", 32)))
    assert {rule for rule, _ in planned} == {"part_b_ood", "part_b_figure"} | REPORT_STAGE
    assert {w for rule, w in planned if rule == "part_b_figure"} == {"part_b_experiment=ood"}


def test_rerun_after_cfg_scale_is_the_guided_part_a_experiments(smoke_run):
    work, _ = smoke_run
    planned = planned_jobs(dry_run(work, "--configfile", override(work, "part_a.cfg_scale", 5.0)))
    assert {rule for rule, _ in planned} == {"part_a", "part_a_figures"} | REPORT_STAGE
    for rule in ("part_a", "part_a_figures"):
        assert {w.removeprefix("experiment=") for r, w in planned if r == rule} == GUIDED


def test_rerun_after_steps_images_is_the_steps_experiments_and_the_report(smoke_run):
    work, _ = smoke_run
    planned = planned_jobs(dry_run(work, "--configfile", override(work, "part_b.steps.num_images", 16)))
    assert {rule for rule, _ in planned} == {"part_b_steps", "part_b_steps_summary", "part_b_figure"} | REPORT_STAGE
    assert {w for rule, w in planned if rule == "part_b_figure"} == {f"part_b_experiment={n}" for n in ("time_steps", "class_steps", "steps")}


def test_rerun_after_the_title_is_the_render_only(smoke_run):
    work, _ = smoke_run
    assert planned_rules(work, "--configfile", override(work, "report.title", "Another title")) == {"report"}


def test_rerun_after_a_caption_is_the_render_only(smoke_run):
    work, _ = smoke_run
    with edited(work / "report" / "sections" / "part_b.qmd", "", "\nOne more sentence of prose.\n"):
        assert planned_rules(work) == {"report"}


def test_rerun_after_a_plot_style_change_is_figures_and_report(smoke_run):
    work, _ = smoke_run
    with edited(work / "src" / "difflab" / "figures" / "part_b.py", "", "\n# a plot-style change\n"):
        assert planned_rules(work) == {"part_b_figure", "manifest", "run_tables", "report"}
    with edited(work / "src" / "difflab" / "figures" / "grids.py", "", "\n# a plot-style change\n"):
        assert planned_rules(work) == {"part_a_figures", "part_b_figure", "manifest", "run_tables", "report"}


def test_corrupt_checkpoint_is_set_aside_and_recomputed_to_the_same_weights(smoke_run):
    """Runs last: damages a kept checkpoint of the first run and reruns the real DAG."""
    work, _ = smoke_run
    kept = work / "results" / "models" / "denoiser" / "epoch_1.pt"
    weights = load_checkpoint(kept)["model"]
    before = metric_files(work)
    data = kept.read_bytes()
    kept.write_bytes(data[: len(data) // 2])
    result = subprocess.run(snakemake_cmd("--workflow-profile", "profiles/smoke", "--cores", "2"), cwd=work,
                            capture_output=True, text=True, env=subprocess_env(work / "src"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "results/models/denoiser/epoch_1.pt: no checksum trailer" in out and "it will be recomputed" in out
    assert "rule train_epoch" in out and "rule report:" in out
    recomputed = load_checkpoint(kept)["model"]
    assert all(torch.equal(weights[k], recomputed[k]) for k in weights)
    assert metric_files(work) == before


PART_A = ["sampling", "forward", "blur", "one_step", "iterative", "benchmark", "samples", "cfg", "spacing", "sdedit",
          "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids", "illusions", "hybrid_sweep"]


def test_part_a_on_the_tiny_deepfloyd_pipeline_reruns_part_a_only(smoke_run, tmp_path_factory):
    """Part A on the DeepFloyd backend, on the tiny random IF-like pipeline (scripts/deepfloyd_tiny.py: stage I with
    its T5 encoder, and stage II), in a copy of the finished smoke run: switching the backend reruns the prompt
    embeddings, the backend file, Part A and the report, and no Part B job; the rendered report names the backend and
    model and shows n/a where the MNIST classifier would be needed."""
    work = tmp_path_factory.mktemp("deepfloyd") / "difflab"
    shutil.copytree(smoke_run[0], work, symlinks=True)
    env = subprocess_env(work / "src")
    overlay = subprocess.run([sys.executable, "scripts/deepfloyd_tiny.py", str(work.parent / "if-tiny")], cwd=work,
                             capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1]
    result = subprocess.run(snakemake_cmd("--workflow-profile", "profiles/smoke", "--configfile", "config/deepfloyd.yaml",
                                          overlay, "--cores", "2"), cwd=work, capture_output=True, text=True, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", out, re.MULTILINE))
    assert {"deepfloyd_prompt_embeds", "deepfloyd_backend", "part_a", "part_a_figures", "report"} <= ran
    assert not {r for r in ran if r.startswith(("train", "sample", "fid", "part_b", "classifier"))}, ran
    results = work / "results"
    assert (results / "models/deepfloyd/prompt_embeds.pt").is_file()  # the embedding rule ran (no precomputed dict)
    for name in PART_A:
        facts = json.loads((results / "experiments/part_a" / name / "facts.json").read_text())
        assert facts["backend"] == "deepfloyd" and facts["model_id"] == "DeepFloyd/IF-I-L-v1.0", name
        assert list((results / "figures/part_a" / name).glob("*.png")), name
    assert json.loads((results / "experiments/part_a/sampling/facts.json").read_text())["stage_2"].startswith("yes")
    html = (results / "report/index.html").read_text()
    assert "DeepFloyd IF stage I (DeepFloyd/IF-I-L-v1.0)" in html and "n/a" in html
    assert "MNIST test images" not in html.split('id="part-b"')[0]  # Part A names the photos instead
