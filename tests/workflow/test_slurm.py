"""profiles/slurm on a real Slurm cluster: the smoke DAG as Slurm jobs, with results equal to a local run.

The tests marked `slurm` need the throwaway single-node cluster of .ci/slurm_up.sh (127.0.0.1, partitions
`cpu` and `gpu`, two fake GPUs, account `ci`); `make test-slurm` starts it, runs them and stops it, and CI
runs that after `make test` (.ci/run). `make test` deselects them and runs only the checks of
profiles/slurm at the top of this file, which need no cluster.
"""

import difflib
import hashlib
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_of_repository, snakemake_cmd, subprocess_env

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
ACCOUNT, CPU_PARTITION, GPU_PARTITION = "ci", "cpu", "gpu"  # what .ci/slurm_up.sh creates


def slurm_args(*configfiles: str) -> list[str]:
    """profiles/slurm on the smoke config (plus `configfiles`), adjusted to the CI cluster."""
    return [
        "--workflow-profile", "profiles/slurm", "--configfile", "config/smoke.yaml", *configfiles,
        # The CI node has 2 CPUs; the profile gives training and the classifier 4 threads. A local `--cores 2`
        # smoke run gives each training epoch 1 (the cores split between the three chains) and the classifier 2,
        # so both runs compute with the same number of threads.
        "--set-threads", "train_epoch=1", "classifier=2",
        # First status poll after 2 s instead of 40 s: the smoke jobs take seconds.
        "--slurm-init-seconds-before-status-checks", "2",
    ]


SMOKE_TIMEOUT = 1200  # s, the whole smoke DAG through Slurm (measured: 5.5-6.5 min on 2 cores)
# A local smoke run's results/ that tests/workflow/test_e2e.py may leave behind; reused when it is of this commit.
SAVED_REFERENCE = ROOT / "results" / "smoke_reference"
TIMINGS = ROOT / "results" / "slurm_timings.txt"

# What may differ between two runs of the same DAG on the same machine, and why; everything else in the
# manifest, the metric CSVs and the report must be equal.
MANIFEST_MAY_DIFFER = {
    "started_utc": "when the run started",
    "finished_utc": "when the run finished",
}
REPORT_MEASURED_COLUMNS = {  # table id -> columns holding measured times, memory or speed
    "tbl-timings": {"wall (s)", "max RSS (MB)", "CPU time (s)"},
    "tbl-b-models": {"training time (s)", "images / s (last epoch)"},
    "tbl-b-steps": {"s / 1,000 samples"},
}
REPORT_MEASURED_TEXT = ("Measured on this run",)  # paragraphs that state measured times
REPORT_MEASURED_FIELDS = {"Wall time"}  # fields of the box under the title whose value is the next text run
REPORT_MANIFEST_ROWS = {"started (UTC)", "finished (UTC)"}  # rows of tbl-manifest: the run's own times


# ---------------------------------------------------------------------------------------------------------
# the profile, without a cluster (part of `make test`)


def gpu_rules() -> set[str]:
    """Rules in rules/**/*.smk whose resources ask for gpu=1."""
    found = set()
    for path in (ROOT / "rules").rglob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), re.MULTILINE):
            if re.search(r"^\s+gpu=1,?\s*$", body, re.MULTILINE):
                found.add(name)
    return found


def local_rules() -> set[str]:
    """Rules the workflow runs on the submitting machine (`localrules:` in rules/**/*.smk): never sent to Slurm."""
    found = set()
    for path in (ROOT / "rules").rglob("*.smk"):
        for names in re.findall(r"^localrules:\s*((?:[ \t]*\w+,?[ \t]*\n?)+)", path.read_text(), re.MULTILINE):
            found |= set(re.findall(r"\w+", names))
    return found


def test_profile_sends_every_gpu_rule_to_the_gpu_partition():
    rules = gpu_rules()
    assert {"train_epoch", "classifier", "part_a"} <= rules
    routed = {rule for rule, resources in yaml.safe_load(PROFILE.read_text())["set-resources"].items()
              if resources.get("slurm_partition") == "$SLURM_GPU_PARTITION"}
    assert routed == rules, f"GPU rules not sent to the GPU partition: {sorted(rules - routed)}; " \
                            f"sent there without asking for a GPU: {sorted(routed - rules)}"


def test_profile_names_a_missing_gpu_partition():
    env = {**subprocess_env(), "SLURM_ACCOUNT": "lab", "SLURM_PARTITION": "cpu"}
    env.pop("SLURM_GPU_PARTITION", None)
    result = subprocess.run(snakemake_cmd("-n", "--workflow-profile", "profiles/slurm", "--configfile", "config/smoke.yaml"),
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "needs the environment variable SLURM_GPU_PARTITION" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# helpers for the cluster tests


def slurm_env() -> dict:
    return {**subprocess_env(), "SLURM_ACCOUNT": ACCOUNT, "SLURM_PARTITION": CPU_PARTITION, "SLURM_GPU_PARTITION": GPU_PARTITION}


def run_snakemake(work: Path, *args: str, timeout: int, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Snakemake in `work` under `timeout`, and its wall time. On timeout SIGINT, on which Snakemake cancels
    its Slurm jobs (on SIGTERM it would wait for them), then SIGKILL 30 s later; --foreground keeps it in
    pytest's process group, which .ci/slurm_test.sh stops as a whole. The jobs import difflab from `work`
    (PYTHONPATH; they inherit it on the nodes too), not from the editable install's src/."""
    command = ["timeout", "--foreground", "-s", "INT", "-k", "30", str(timeout), *snakemake_cmd(*args)]
    env = {**(env or slurm_env()), "PYTHONPATH": str(work / "src")}
    start = time.monotonic()
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    return result, time.monotonic() - start


def record_timing(line: str) -> None:
    TIMINGS.parent.mkdir(exist_ok=True)
    with TIMINGS.open("a") as fh:
        fh.write(line + "\n")


def sacct(job_ids) -> dict[str, dict]:
    """Accounting records (slurmdbd) of the given Slurm job ids: id -> name, partition, state, AllocTRES."""
    fields = ["JobIDRaw", "JobName", "Partition", "State", "AllocTRES"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", ",".join(fields), "-j", ",".join(job_ids)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    records = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]
    return {r["JobIDRaw"]: r for r in records}


def submitted_jobs(log: str) -> dict[str, tuple[str, str]]:
    """Slurm job id -> (rule, Slurm log) from Snakemake's "submitted with SLURM jobid" lines."""
    jobs = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+/slurm_logs/rule_(\w+)/\S+)\)", log)
    return {job_id: (rule, path) for job_id, path, rule in jobs}


def job_stats(log: str) -> Counter:
    """Rule -> job count from the "Job stats" table Snakemake prints before it starts."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)})


@pytest.fixture(scope="module")
def cluster():
    try:
        partitions = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"no Slurm cluster ({exc}); `make test-slurm` starts one with .ci/slurm_up.sh")
    assert partitions.returncode == 0 and f"{GPU_PARTITION} up" in partitions.stdout, \
        f"no Slurm cluster with a `{GPU_PARTITION}` partition ({partitions.stderr.strip()}); `make test-slurm` starts one"


@pytest.fixture(scope="module")
def source(tmp_path_factory, mnist_npz) -> Path:
    """One copy of the repository that every run here starts from: the Slurm run and the local run compute
    from the same source even if the working tree changes meanwhile."""
    return copy_of_repository(tmp_path_factory.mktemp("source") / "difflab")


def copy_of(source: Path, dest: Path) -> Path:
    return shutil.copytree(source, dest, symlinks=True)


@pytest.fixture(scope="module")
def slurm_run(cluster, source, tmp_path_factory):
    """The smoke DAG through profiles/slurm in a copy of the source: (folder, Snakemake's output)."""
    work = copy_of(source, tmp_path_factory.mktemp("slurm") / "difflab")
    result, seconds = run_snakemake(work, *slurm_args(), timeout=SMOKE_TIMEOUT)
    log = result.stdout + result.stderr
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "slurm_smoke.log").write_text(log)
    assert result.returncode == 0, log[-4000:]
    record_timing(f"Slurm smoke run (profiles/slurm, {len(submitted_jobs(log))} Slurm jobs): {seconds:.0f} s")
    return work, log


def saved_reference_problem(source: Path) -> str | None:
    """Why results/smoke_reference cannot stand for a local run of `source`, or None if it can: it must
    come from the commit of `source`, with no local changes then or now."""
    manifest = SAVED_REFERENCE / "manifest.json"
    if not manifest.exists():
        return f"no {manifest.relative_to(ROOT)}"
    saved = json.loads(manifest.read_text())
    git = lambda *args: subprocess.run(["git", *args], cwd=source, capture_output=True, text=True).stdout.strip()
    if saved.get("git_commit") != git("rev-parse", "HEAD"):
        return "it was made from another commit"
    if saved.get("git_dirty") or git("status", "--porcelain"):
        return "the source has local changes (then or now), which the saved manifest cannot identify"
    return None


@pytest.fixture(scope="module")
def local_results(source, tmp_path_factory):
    """results/ of a local smoke run of the source: the one `make test` saved, if it is of this commit
    (saves CI a third smoke run), else a fresh one (--cores 2, as tests/workflow/test_e2e.py runs it)."""
    problem = saved_reference_problem(source)
    if problem is None:
        record_timing(f"local smoke run: reused {SAVED_REFERENCE.relative_to(ROOT)}")
        return SAVED_REFERENCE
    work = copy_of(source, tmp_path_factory.mktemp("local") / "difflab")
    result, seconds = run_snakemake(work, "--workflow-profile", "profiles/smoke", "--cores", "2", timeout=SMOKE_TIMEOUT,
                                    env=subprocess_env())
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    record_timing(f"local smoke run (profiles/smoke --cores 2; {problem}, so run here): {seconds:.0f} s")
    return work / "results"


class ReportContent(HTMLParser):
    """What a reader of the report sees, one line per text run, table row and image, in page order.
    Table rows are (table id, cells); images are their data's SHA-256."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.lines, self.headers = [], {}
        self.table = self.row = self.cell = None
        self.hidden = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "script"):
            self.hidden += 1
        elif tag == "table":
            self.table = attrs.get("id", "table")
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.lines.append(f"image sha256:{hashlib.sha256(attrs.get('src', '').encode()).hexdigest()}")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self.hidden -= 1
        elif tag in ("td", "th") and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.headers.setdefault(self.table, self.row)  # a table's first row is its header
            self.lines.append((self.table, self.row))
            self.row = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        elif not self.hidden and data.strip():
            self.lines.append(" ".join(data.split()))

    def comparable(self) -> list[str]:
        """The lines with the measured cells (REPORT_MEASURED_COLUMNS, REPORT_MANIFEST_ROWS) and measured text
        (REPORT_MEASURED_TEXT, REPORT_MEASURED_FIELDS) blanked."""
        out = []
        for i, line in enumerate(self.lines):
            previous = self.lines[i - 1] if i > 0 else None
            measured_field = isinstance(previous, str) and previous in REPORT_MEASURED_FIELDS
            if isinstance(line, str) and (line.startswith(REPORT_MEASURED_TEXT) or measured_field):
                line = "<measured>"
            if isinstance(line, tuple):
                table, cells = line
                header = self.headers[table]
                measured = REPORT_MEASURED_COLUMNS.get(table, set())
                cells = ["<measured>" if cells is not header and i < len(header) and header[i] in measured else cell
                         for i, cell in enumerate(cells)]
                if table == "tbl-manifest" and cells[0] in REPORT_MANIFEST_ROWS:
                    cells = [cells[0], "<time>"]
                line = f"[{table}] " + " | ".join(cells)
            out.append(line)
        return out


# ---------------------------------------------------------------------------------------------------------
# on the cluster (`make test-slurm`)


@pytest.mark.slurm
def test_every_job_ran_as_a_slurm_job(slurm_run):
    _, log = slurm_run
    jobs = submitted_jobs(log)
    # `all` only collects the report: it has no command, so Snakemake finishes it without submitting; local rules
    # (copying checkpoints, figures, summaries, the report stage) run on the submitting machine by design.
    local = local_rules()
    assert {"keep_checkpoint", "part_a_figures", "part_b_figure", "report"} <= local
    expected = Counter({rule: n for rule, n in job_stats(log).items() if rule != "all" and rule not in local})
    assert Counter(rule for rule, _ in jobs.values()) == expected
    records = sacct(jobs)
    assert set(records) == set(jobs), "jobs missing from Slurm's accounting"
    assert {r["State"] for r in records.values()} == {"COMPLETED"}
    assert len({r["JobName"] for r in records.values()}) == 1, "one Snakemake run, one job name"


@pytest.mark.slurm
def test_jobs_got_the_profiles_partition_gpu_cpus_and_memory(slurm_run):
    _, log = slurm_run
    jobs = submitted_jobs(log)
    profile = yaml.safe_load(PROFILE.read_text())
    gpu = gpu_rules()
    threads = {"train_epoch": 1, "classifier": 2}  # slurm_args() --set-threads
    for job_id, record in sacct(jobs).items():
        rule = jobs[job_id][0]
        tres = dict(item.split("=", 1) for item in record["AllocTRES"].split(","))
        mem_mb = profile["set-resources"].get(rule, {}).get("mem_mb", profile["default-resources"]["mem_mb"])
        got = (record["Partition"], tres.get("gres/gpu"), tres["cpu"], tres["mem"])
        want = (GPU_PARTITION if rule in gpu else CPU_PARTITION, "1" if rule in gpu else None, str(threads.get(rule, 1)), f"{mem_mb}M")
        assert got == want, f"Slurm job {job_id} (rule {rule}): partition, GPUs, CPUs, memory {got}; expected {want}"


@pytest.mark.slurm
def test_results_equal_a_local_run(slurm_run, local_results):
    work, _ = slurm_run
    remote, local = work / "results", local_results

    # Metric CSVs: the same files, byte for byte.
    def metric_files(results):
        return {p.relative_to(results).as_posix(): p.read_bytes() for p in sorted((results / "metrics").rglob("*.csv"))}

    local_metrics, remote_metrics = metric_files(local), metric_files(remote)
    assert local_metrics.keys() == remote_metrics.keys() and len(local_metrics) >= 10
    assert [name for name in local_metrics if local_metrics[name] != remote_metrics[name]] == []

    # Manifest: every key equal but the run's own start and end times.
    local_manifest, remote_manifest = (json.loads((r / "manifest.json").read_text()) for r in (local, remote))
    assert local_manifest.keys() == remote_manifest.keys()
    assert {k: (local_manifest[k], remote_manifest[k]) for k in local_manifest
            if k not in MANIFEST_MAY_DIFFER and local_manifest[k] != remote_manifest[k]} == {}

    # Report: every text, table cell and embedded image equal, but the measured cells.
    local_page, remote_page = (ReportContent((r / "report" / "index.html").read_text()) for r in (local, remote))
    for page in (local_page, remote_page):
        assert set(REPORT_MEASURED_COLUMNS) | {"tbl-manifest"} <= set(page.headers), "a table this test masks is gone"
    assert sum(line.startswith("image ") for line in local_page.comparable()) >= 20
    diff = list(difflib.unified_diff(local_page.comparable(), remote_page.comparable(), "local", "slurm", lineterm="", n=1))
    assert diff == [], "\n".join(diff[:60])


@pytest.mark.slurm
def test_a_failing_job_fails_the_run_with_its_slurm_job_id_and_log(cluster, source, tmp_path):
    work = copy_of(source, tmp_path / "difflab")
    # MNIST "IDX files" that are not: the data job fails inside its Slurm job, a few seconds in.
    raw = work / "broken" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_text("not an IDX file\n")
    (work / "broken.yaml").write_text("data:\n  raw_dir: broken/MNIST/raw\n")
    result, seconds = run_snakemake(work, "results/data/mnist.npz", *slurm_args("broken.yaml"), timeout=300)
    out = result.stdout + result.stderr
    (ROOT / "results" / "slurm_failing_job.log").write_text(out)
    assert result.returncode == 1, out[-3000:]
    failed = re.search(r"Error in rule mnist:\n\s+message: SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", out)
    assert failed, out[-3000:]
    job_id = failed.group(1)
    slurm_log = work / ".snakemake" / "slurm_logs" / "rule_mnist" / f"{job_id}.log"
    assert f"log: results/logs/data/mnist.log, {slurm_log} (check log file(s) for error details)" in out
    assert f"external_jobid: {job_id}" in out
    assert slurm_log.is_file()
    # The job's own log (every rule writes its output there: `> {log} 2>&1`) holds the error, and the run prints it.
    error = "difflab data: error: broken/MNIST/raw: torchvision cannot read the train IDX files"
    assert error in (work / "results" / "logs" / "data" / "mnist.log").read_text()
    assert "Logfile results/logs/data/mnist.log:\n" in out and error in out
    assert sacct([job_id])[job_id]["State"] == "FAILED"
    record_timing(f"failing-job run: {seconds:.0f} s ({failed.group(0).splitlines()[-1].strip()})")


@pytest.mark.slurm
def test_a_failing_status_query_stops_the_run_before_any_job(cluster, source, tmp_path):
    # A cluster without accounting: sacct exists but every query fails. The executor plugin would submit
    # and then wait forever; the Snakefile's check stops the run first and says what to do.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    (shim / "sacct").chmod(0o755)
    env = slurm_env()
    env["PATH"] = f"{shim}:{env['PATH']}"
    work = copy_of(source, tmp_path / "difflab")
    target = "results/models/denoiser/chain/epoch_0.pt"  # one job with no inputs
    stopped, _ = run_snakemake(work, target, *slurm_args(), timeout=120, env=env)
    out = stopped.stdout + stopped.stderr
    assert stopped.returncode == 1, out[-3000:]
    assert "difflab: slurm error: the job status query `sacct -X ...` failed " \
           "(sacct: error: Slurm accounting storage is disabled)" in stopped.stderr
    assert "slurm-status-command: squeue" in stopped.stderr
    assert "submitted with SLURM jobid" not in out
    # The advice works: with squeue as the status command the same job runs and is seen to finish.
    ran, _ = run_snakemake(work, target, *slurm_args(), "--slurm-status-command", "squeue", timeout=300, env=env)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-3000:]
    assert len(submitted_jobs(ran.stdout + ran.stderr)) == 1
