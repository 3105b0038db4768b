"""One real end-to-end run of the smoke profile in a temporary copy of the repository: real Snakemake,
real MNIST, every rule, and the rendered report checked for content and self-containment (and in a real
browser when Chromium is installed)."""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import ROOT, snakemake_cmd, subprocess_env

pytestmark = pytest.mark.e2e

COPY_IGNORE = shutil.ignore_patterns(".venv", "results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache", "data")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, mnist_npz):
    work = tmp_path_factory.mktemp("smoke") / "difflab"
    shutil.copytree(ROOT, work, ignore=COPY_IGNORE)
    # Reuse the mirror wheel already downloaded by the mnist_npz fixture: the data rule still reads and
    # verifies it for real, without a second 20 MB download.
    shutil.copytree(ROOT / "results" / "data" / "download", work / "results" / "data" / "download")
    result = subprocess.run(snakemake_cmd("--workflow-profile", "profiles/smoke", "--cores", "2"),
                            cwd=work, capture_output=True, text=True, env=subprocess_env())
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "e2e_smoke.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-4000:]
    return work, result


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
    from difflab.report import include_paths

    for snippet in include_paths(work / "report" / "index.qmd"):
        text = (work / snippet).read_text()
        assert text.strip(), f"{snippet} is empty"


def test_metrics_are_tidy_and_complete(smoke_run):
    work, _ = smoke_run
    columns = ["experiment", "model", "epoch", "parameter", "metric", "value", "n", "extractor"]
    frames = [pd.read_csv(p) for p in sorted((work / "results" / "metrics").rglob("*.csv"))]
    for frame in frames:
        assert list(frame.columns) == columns
    metrics = pd.concat(frames)
    fid = metrics[metrics.metric == "fid"]
    assert set(fid.experiment) >= {"ddpm_time", "ddpm_class", "cfg_sweep", "fid_floor"}
    assert (fid.value >= 0).all() and (fid.n == 64).all()
    assert "test_accuracy" in set(metrics.metric)


def test_rerun_has_nothing_to_do(smoke_run):
    work, _ = smoke_run
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/smoke"), cwd=work,
                            capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_report_in_a_real_browser(smoke_run):
    from browser_check import browser_missing, check_report
    from difflab.report import section_headings

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    work, _ = smoke_run
    shot = work / "results" / "report" / "screenshot.png"
    check_report(work / "results" / "report" / "index.html", section_headings((work / "report" / "index.qmd").read_text()), shot)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, ROOT / "results" / "e2e_screenshot.png")
