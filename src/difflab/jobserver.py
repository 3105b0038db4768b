"""Start-up paid once: a fork server for `python -m difflab <verb>` jobs (README "Start-up").

Trade-off: every Snakemake job stays its own job (reruns stay precise), but on a local run its process no longer
imports torch and difflab: one pre-warmed server has, and forks a child per job. `python -m difflab` forwards the
call when DIFFLAB_JOBSERVER=<socket path> is set and the server answers, else runs in-process as before (Slurm
and other executors, DIFFLAB_JOBSERVER=off, a dead server).

Protocol (one Unix stream socket; one connection per job):
  1. The client connects and sends, in one sendmsg, an 8-byte header -- the big-endian length of the request --
     with its descriptors 0, 1, 2 attached (SCM_RIGHTS), then the request: JSON {"argv": sys.argv, "cwd": ...,
     "env": os.environ, "package": the client's difflab folder}. The header STOP (no descriptors) asks the
     server to stop.
  2. The server reads the header, forks, closes its copies of the descriptors. The child makes its own process
     group, drops the server's exit handlers and finalizers, reads the request, answers "pid <pid>\\n" (or
     "refuse\\n" when the client's difflab folder is not the server's: the client then runs in-process), dup2s
     the descriptors onto 0-2, chdirs, replaces os.environ and sys.argv, applies the job's thread counts (torch,
     OpenBLAS) and runs difflab.cli.main(argv[1:]) as the interpreter would: SystemExit codes, an uncaught
     exception -> traceback on stderr and status 1.
  3. The child answers "exit <status>\\n" once its output is flushed; the server, on reaping it, answers
     "exit <status>" or "signal <n>" (a killed child). The client takes the first and exits the same way.
  Cancellation: the client forwards SIGINT, SIGTERM and SIGHUP to the child's process group (SIGINT gives the
  verbs' usual KeyboardInterrupt clean-up); a client that dies (SIGKILL) closes its connection, and a thread in
  the child that waits for that EOF kills the child's process group.

Limits: the server imports its modules once, so code edited during a run is seen by jobs only after the next
start; interpreter start-up settings (sys.path, PYTHONWARNINGS, -X flags) are the server's; all children share
the server's hash seed; Snakemake's benchmark files measure the client process, so their wall time (s) is the
job's but max_rss and cpu_time are the client's (each job prints its own: difflab.usage). Before forking the server runs no torch
op, initialises no CUDA and starts no thread (OPENBLAS_NUM_THREADS=1 while it imports), so children start clean.
The socket is created with mode 0600.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

ENV = "DIFFLAB_JOBSERVER"
HEADER = struct.Struct(">Q")
STOP = b"STOP\0\0\0\0"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Modules the server imports before it forks: what the verbs import, minus the Snakefile side and the tools.
WARM_SKIP = {"difflab.__main__", "difflab.bench", "difflab.repeatability", "difflab.workflow", "difflab.jobserver"}


def package_dir() -> str:
    """The real path of the imported difflab package: client and server must run the same code."""
    import difflab

    return os.path.realpath(os.path.dirname(difflab.__file__))


# --- client ---------------------------------------------------------------------------------------------------


def forward(argv: list[str]) -> int | None:
    """Run `argv` (sys.argv of `python -m difflab ...`) in a child of the job server named by $DIFFLAB_JOBSERVER.

    Returns the child's exit status, or None when there is no server to ask (variable unset, empty or 'off',
    socket missing or refusing, a descriptor 0-2 closed, a server of another difflab checkout): the caller then
    runs the verb in-process. A child killed by signal n kills this process with n (status 128+n if that
    returns). Imports no torch."""
    path = os.environ.get(ENV, "")
    if path in {"", "off", "0"}:
        return None
    request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "package": package_dir()})
    payload = request.encode()
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        socket.send_fds(sock, [HEADER.pack(len(payload))], [0, 1, 2])
        sock.sendall(payload)
        answers = sock.makefile("rb")
        first = answers.readline()
    except OSError:
        return None
    if not first.startswith(b"pid "):
        return None  # refused, or the server died before it forked: nothing ran
    pid = int(first.split()[1])
    for signum in CANCEL_SIGNALS:  # the child is its process group's leader
        signal.signal(signum, lambda signum, frame: _quietly(os.killpg, pid, signum))
    try:
        last = answers.readline().split()
    except OSError:  # a reset connection: a lost job, as below
        last = []
    if len(last) == 2 and last[0] == b"exit":
        return int(last[1])
    if len(last) == 2 and last[0] == b"signal":
        signum = int(last[1])
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    print(f"difflab: the job server at {path} lost job {pid} (no exit status)", file=sys.stderr)
    return 1


def _quietly(call, *args) -> None:
    """call(*args), ignoring OSError (a process already gone, a connection already closed)."""
    try:
        call(*args)
    except OSError:
        pass


def stop_server(path: str, timeout: float = 60.0) -> bool:
    """Ask the server at `path` to stop; waits until it has finished its running jobs and exited.

    Returns False when no server answered (already gone)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(STOP)
            while sock.recv(64):
                pass
        return True
    except OSError:
        return False


# --- Snakefile side ---------------------------------------------------------------------------------------------


def socket_path(workdir: str) -> str:
    """`<workdir>/.snakemake/difflab-<pid>.sock`, or the same name in the temporary folder when that path is too
    long for a Unix socket (about 108 bytes)."""
    import tempfile

    name = f"difflab-{os.getpid()}.sock"
    path = os.path.join(os.path.abspath(workdir), ".snakemake", name)
    short = os.path.join(tempfile.gettempdir(), f"{os.getuid()}-{name}")
    return path if len(path.encode()) <= MAX_SOCKET_PATH else short


def start_server(workdir: str, executor: str | None) -> str | None:
    """Start the job server for a local Snakemake run in `workdir` and export DIFFLAB_JOBSERVER to its jobs.

    Does nothing (returns None) for other executors (`executor` is the plugin's name: 'local' only) or when
    DIFFLAB_JOBSERVER is already set (e.g. 'off'). The server binds its socket at once and imports while the
    first jobs queue on it; its log is .snakemake/difflab-jobserver.log. Returns the socket path."""
    import subprocess

    if executor != "local" or ENV in os.environ:
        return None
    path = socket_path(workdir)
    os.makedirs(os.path.join(workdir, ".snakemake"), exist_ok=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # no BLAS thread pool before fork; children set their own
    command = [sys.executable, "-m", "difflab.jobserver", "serve", "--socket", path, "--parent", str(os.getpid())]
    with open(os.path.join(workdir, ".snakemake", "difflab-jobserver.log"), "ab") as log:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
    os.environ[ENV] = path
    return path


def stop_from_snakefile() -> None:
    """onsuccess/onerror: stop the server this process started (if any) and stop exporting it."""
    path = os.environ.get(ENV, "")
    if path.endswith(f"difflab-{os.getpid()}.sock"):
        stop_server(path)
        del os.environ[ENV]


# --- server ---------------------------------------------------------------------------------------------------


def warm_up() -> None:
    """Import what jobs import (torch, numpy, torchvision, every difflab module a verb uses), running nothing."""
    import importlib
    import pkgutil

    import difflab

    for name in ("numpy", "torch", "torchvision"):
        importlib.import_module(name)
    for module in pkgutil.walk_packages(difflab.__path__, "difflab."):
        if module.name not in WARM_SKIP:
            importlib.import_module(module.name)


def serve(path: str, parent: int | None) -> None:
    """Listen on `path` until STOP or until process `parent` is gone, then finish the running jobs and exit.

    The socket is bound before the imports, so jobs started meanwhile wait for the server, not for imports of
    their own. Removes the socket on exit."""
    import selectors

    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket file: 0600
    listener.bind(path)
    os.umask(old_umask)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    jobs: dict[int, tuple[socket.socket, int]] = {}  # child pid -> (connection, pidfd)
    stoppers: list[socket.socket] = []
    try:
        while listener.fileno() >= 0 or jobs:
            for key, _ in selector.select(timeout=1.0):
                if key.fileobj is not listener:
                    _reap(key.data, jobs, selector)
                    continue
                conn = listener.accept()[0]
                pid = _start_job(conn, listener, jobs, stoppers)
                if pid == 0:
                    _close(listener, path, selector)
                elif pid > 0:
                    jobs[pid] = (conn, os.pidfd_open(pid))
                    selector.register(jobs[pid][1], selectors.EVENT_READ, pid)
            if listener.fileno() >= 0 and parent is not None and not os.path.exists(f"/proc/{parent}"):
                _close(listener, path, selector)
    finally:
        _close(listener, path, None)
        for conn in stoppers:
            conn.close()


def _close(listener: socket.socket, path: str, selector) -> None:
    """Stop accepting: no new job can connect once the socket file is gone."""
    if listener.fileno() >= 0:
        if selector is not None:
            selector.unregister(listener)
        listener.close()
        os.unlink(path)


def _start_job(conn: socket.socket, listener: socket.socket, jobs: dict, stoppers: list) -> int:
    """Read a request's header and fork its child. Returns the child's pid, 0 for STOP, -1 for a bad request."""
    conn.settimeout(10.0)
    try:
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        while header and len(header) < HEADER.size:
            more = conn.recv(HEADER.size - len(header))
            header += more
            if not more:
                break
    except OSError:
        header, fds = b"", []
    if header == STOP and not fds:
        stoppers.append(conn)  # closed when the server exits: the stopper waits for that
        return 0
    if len(header) != HEADER.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        conn.close()
        return -1
    conn.settimeout(None)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            listener.close()
            for other, pidfd in jobs.values():
                other.close()
                os.close(pidfd)
            for other in stoppers:
                other.close()
            status = _run_child(conn, fds, HEADER.unpack(header)[0])
        finally:
            os._exit(status)
    for fd in fds:
        os.close(fd)
    return pid


def _reap(pid: int, jobs: dict, selector) -> None:
    conn, pidfd = jobs.pop(pid)
    selector.unregister(pidfd)
    os.close(pidfd)
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    _quietly(conn.sendall, f"exit {code}\n".encode() if code >= 0 else f"signal {-code}\n".encode())
    conn.close()  # (the client may have its status from the child already, or be gone)


# --- child ----------------------------------------------------------------------------------------------------


def _run_child(conn: socket.socket, fds: list[int], length: int) -> int:
    """In the forked child: become the caller's process (descriptors, cwd, environment, argv) and run the verb."""
    import atexit
    import threading
    import weakref

    os.setpgid(0, 0)
    atexit._clear()  # the server's exit handlers and finalizers (its temporary folders...) are not the job's
    weakref.finalize._registry.clear()
    weakref.finalize._registered_with_atexit = False
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        request = json.loads(conn.recv(length, socket.MSG_WAITALL))
    except (OSError, ValueError):
        return 1
    if request.get("package") != package_dir():
        conn.sendall(b"refuse\n")
        return 0
    conn.sendall(f"pid {os.getpid()}\n".encode())
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=stream.isatty() or stream is sys.stderr)
    _apply_thread_counts(os.environ)
    finished = threading.Event()
    threading.Thread(target=_kill_group_on_eof, args=(conn, finished), daemon=True).start()
    status = _run_main(sys.argv[1:])
    finished.set()
    for stream in (sys.stdout, sys.stderr):
        _quietly(stream.flush)
    _quietly(conn.sendall, f"exit {status}\n".encode())
    return status


def _run_main(args: list[str]) -> int:
    """difflab.cli.main(args) with the interpreter's own top-level rules for SystemExit and uncaught exceptions."""
    import atexit
    import traceback

    from difflab.cli import main

    try:
        try:
            status = main(args)
        finally:
            atexit._run_exitfuncs()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0) & 0xFF
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:  # noqa: BLE001 -- what the interpreter does with an uncaught exception
        traceback.print_exc()
        return 128 + signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1
    return int(status or 0) & 0xFF


def _kill_group_on_eof(conn: socket.socket, finished) -> None:
    """The client sends nothing after its request: EOF means it is gone, so the job must go too."""
    _quietly(conn.recv, 1)
    if not finished.is_set():
        os.killpg(0, signal.SIGKILL)


def _apply_thread_counts(env) -> None:
    """The job's thread counts, as a fresh process would read them from its environment: torch's intra-op
    threads from OMP_NUM_THREADS, OpenBLAS's (numpy's and scipy's copies) from OPENBLAS_NUM_THREADS; unset -> the
    usable cores."""
    import ctypes

    import torch

    cores = len(os.sched_getaffinity(0))
    omp = env.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:  # unset: the server's own default, which is a fresh process's
        torch.set_num_threads(int(omp))
    blas = env.get("OPENBLAS_NUM_THREADS", "")
    count = int(blas) if blas.isdigit() and int(blas) > 0 else cores
    with open("/proc/self/maps") as maps:
        libraries = {line.split()[-1] for line in maps if "openblas" in line and line.rstrip().endswith(".so")}
    for library in libraries:
        handle = ctypes.CDLL(library)
        for symbol in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
            if hasattr(handle, symbol):
                getattr(handle, symbol)(count)


def main(argv: list[str] | None = None) -> int:
    """`python -m difflab.jobserver serve --socket PATH [--parent PID]` | `stop --socket PATH`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m difflab.jobserver", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["serve", "stop"])
    parser.add_argument("--socket", required=True, help="the Unix socket's path")
    parser.add_argument("--parent", type=int, help="exit when this process is gone (serve)")
    args = parser.parse_args(argv)
    return serve(args.socket, args.parent) or 0 if args.action == "serve" else int(not stop_server(args.socket))


if __name__ == "__main__":
    sys.exit(main())
