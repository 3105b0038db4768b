"""A test verb for tests/unit/test_jobserver.py, registered in the test's job server only: it reports what a job
sees (cwd, an environment variable, torch's and OpenBLAS's thread counts, argv), sleeps, or fails, on request."""

import os
import sys
import time

from difflab import DifflabError


def cli(argv: list[str]) -> None:
    action = argv[0]
    if action == "show":
        import torch

        print(os.getcwd(), os.environ.get("PROBE_VALUE"), torch.get_num_threads(), sys.argv[1:], sep="|")
        print("to stderr", file=sys.stderr)
        (__import__("pathlib").Path("written.txt")).write_text("relative to the cwd")
    elif action == "sleep":
        print("started", flush=True)
        try:
            time.sleep(float(argv[1]))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
    elif action == "error":
        raise DifflabError(f"config key 'probe' = {argv[1]!r}: expected something else")
    elif action == "crash":
        raise RuntimeError("an unexpected failure")
    elif action == "exit":
        raise SystemExit(int(argv[1]))
