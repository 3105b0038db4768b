"""The fork server (difflab.jobserver): a forwarded `python -m difflab` behaves as the process it replaces --
exit status, output in the caller's files, the caller's cwd, environment and thread count, one-line errors,
tracebacks, cancellation -- and without a server the call runs in-process as before. One server serves the
module (its start imports torch); it has an extra verb, `probe` (tests/helpers/jobserver_probe.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env
from difflab import jobserver

SRC = ROOT / "src"
SERVE = ("import sys, difflab.cli as cli; cli.COMMANDS['probe'] = ('helpers.jobserver_probe:cli', 'test verb'); "
         "from difflab.jobserver import main; sys.exit(main(sys.argv[1:]))")


def job_env(sock, **extra):
    env = {**subprocess_env(SRC), **extra, jobserver.ENV: str(sock)}
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{ROOT / 'tests'}"
    return env


def client(args, sock, cwd, env=None, **kwargs):
    """`python -m difflab <args>` as a Snakemake job runs it, with the server at `sock` exported."""
    return subprocess.Popen([sys.executable, "-m", "difflab", *args], cwd=cwd, env=job_env(sock, **(env or {})),
                            **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live server; stopped at the end, which must remove its socket."""
    sock = tmp_path_factory.mktemp("jobserver") / "s.sock"
    env = {**job_env(sock), "OPENBLAS_NUM_THREADS": "1"}
    del env[jobserver.ENV]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--socket", str(sock), "--parent", str(os.getpid())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not bind its socket"
        time.sleep(0.1)
    yield sock, proc
    assert jobserver.stop_server(str(sock))
    assert proc.wait(timeout=60) == 0, proc.stdout.read().decode()
    assert not sock.exists(), "the server must remove its socket"


def shell(command, sock, cwd, **env):
    """A job's shell line with redirections, as a Snakemake rule writes it."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=job_env(sock, **env), timeout=120).returncode


def test_output_reaches_the_callers_redirected_files_with_cwd_env_and_threads(server, tmp_path):
    sock, _ = server
    py = f"{sys.executable} -m difflab"
    assert shell(f"{py} probe show x > log 2>&1", sock, tmp_path, PROBE_VALUE="42", OMP_NUM_THREADS="1") == 0
    lines = (tmp_path / "log").read_text().splitlines()
    assert f"{tmp_path}|42|1|['probe', 'show', 'x']" in lines and "to stderr" in lines
    assert (tmp_path / "written.txt").read_text() == "relative to the cwd"
    assert shell(f"{py} probe show > out 2> err", sock, tmp_path, OMP_NUM_THREADS="2") == 0
    assert (tmp_path / "out").read_text() == f"{tmp_path}|None|2|['probe', 'show']\n"
    err = (tmp_path / "err").read_text().splitlines()
    assert err[0] == "to stderr" and err[1].startswith("difflab usage: max_rss_mb=") and len(err) == 2  # the job's own use


def test_exit_status_and_errors_are_a_processes(server, tmp_path):
    sock, _ = server
    py = f"{sys.executable} -m difflab"
    assert shell(f"{py} probe exit 7 2> err", sock, tmp_path) == 7
    assert shell(f"{py} probe error bad 2> err", sock, tmp_path) == 2
    assert (tmp_path / "err").read_text() == "difflab probe: error: config key 'probe' = 'bad': expected something else\n"
    assert shell(f"{py} probe crash 2> err", sock, tmp_path) == 1
    err = (tmp_path / "err").read_text()
    assert err.startswith("Traceback (most recent call last):") and err.endswith("RuntimeError: an unexpected failure\n")
    assert shell(f"{py} nosuchverb 2> err", sock, tmp_path) == 2
    assert "unknown verb 'nosuchverb'" in (tmp_path / "err").read_text()


def test_argparse_errors_match_the_in_process_run(server, tmp_path):
    sock, _ = server
    forwarded = client(["manifest", "--bogus"], sock, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = forwarded.communicate(timeout=120)
    direct = subprocess.run([sys.executable, "-m", "difflab", "manifest", "--bogus"], cwd=tmp_path,
                            env=job_env("off"), capture_output=True, timeout=120)
    assert forwarded.returncode == direct.returncode == 2
    assert (out, err) == (direct.stdout, direct.stderr) and b"the following arguments are required" in err


def test_unreachable_or_off_server_runs_in_process(tmp_path):
    stale = tmp_path / "stale.sock"  # a socket file nobody listens on: what a killed run leaves
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    for value in (tmp_path / "missing.sock", "off", stale):
        # `probe` exists only inside the test server: in-process it is an unknown verb.
        result = subprocess.run([sys.executable, "-m", "difflab", "probe", "show"], cwd=tmp_path,
                                env=job_env(value), capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "unknown verb 'probe'" in result.stderr, value


def test_the_client_path_does_not_import_torch(server, tmp_path):
    sock, _ = server
    proc = client(["probe", "exit", "0"], sock, tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"},
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")}
    assert "difflab.jobserver" in imported and not imported & {"torch", "numpy", "difflab.cli"}


def test_the_server_runs_one_thread_before_it_forks(server):
    _, proc = server
    assert len(os.listdir(f"/proc/{proc.pid}/task")) == 1


def test_two_calls_at_once(server, tmp_path):
    sock, _ = server
    procs = [client(["probe", "sleep", "1"], sock, tmp_path, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    child_pids = children_of(server[1].pid, 2)
    assert len(child_pids) == 2
    assert [(p.communicate(timeout=120)[0], p.returncode) for p in procs] == [("started\n", 0)] * 2


def children_of(pid, count, timeout=60.0):
    """The server's forked children, once `count` are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) >= count:
            return [int(c) for c in children]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} children of the server appeared")


def gone(pid, timeout=10.0):
    """True once `pid` has exited (a zombie awaiting its reaping counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_client_kills_its_child(server, tmp_path, signum):
    """SIGKILL: the client's connection closes and the child's watcher kills the child's process group.
    SIGTERM: the client forwards it, the child dies of it, and the client dies of the same signal."""
    sock, proc = server
    job = client(["probe", "sleep", "120"], sock, tmp_path, stdout=subprocess.PIPE, text=True)
    assert job.stdout.readline() == "started\n"
    (child,) = children_of(proc.pid, 1)
    job.send_signal(signum)
    assert job.wait(timeout=60) == -signum
    assert gone(child), "the forked child outlived its client"


def test_sigint_gives_the_verbs_keyboard_interrupt_clean_up(server, tmp_path):
    sock, proc = server
    job = client(["probe", "sleep", "120"], sock, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert job.stdout.readline() == "started\n"
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 130 and out == "interrupted\n"
    assert err == "difflab probe: interrupted; completed outputs were kept, partial ones removed\n"


def test_socket_path_falls_back_to_the_temporary_folder_when_too_long(tmp_path):
    assert jobserver.socket_path(str(tmp_path)).startswith(str(tmp_path / ".snakemake"))
    long = tmp_path / ("x" * 120)
    path = jobserver.socket_path(str(long))
    assert len(path.encode()) <= jobserver.MAX_SOCKET_PATH and not path.startswith(str(long))
