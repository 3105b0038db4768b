"""A job's own resource use, printed as the last line of its log and read back by the report's timing table.

Snakemake's `benchmark:` measures the process it starts. When the job server forks jobs (difflab.jobserver), that
process only forwards the call, so its memory and CPU time say nothing about the job; and no Snakemake measurement
sees GPU memory. So every verb ends by printing, from inside the job,

    difflab usage: max_rss_mb=<peak resident memory, MB> cpu_s=<user + system CPU seconds> cuda_peak_mb=<MB or NA>

(getrusage of the job's own process: in a forked job that is the fork, whose peak includes the pre-imported
libraries, as a fresh process's would; torch.cuda.max_memory_allocated where the job used CUDA). No torch import.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

PREFIX = "difflab usage:"
LINE = re.compile(r"^difflab usage: max_rss_mb=([0-9.]+) cpu_s=([0-9.]+) cuda_peak_mb=([0-9.]+|NA)$")


def usage_line() -> str:
    """This process's usage so far, in the format above (ru_maxrss is in KiB on Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    cuda = "NA"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        cuda = f"{torch.cuda.max_memory_allocated() / 2**20:.1f}"
    return f"{PREFIX} max_rss_mb={own.ru_maxrss / 1024:.1f} cpu_s={own.ru_utime + own.ru_stime:.2f} cuda_peak_mb={cuda}"


def read_usage(log: Path) -> dict[str, float | None] | None:
    """The last usage line of a job's log as {max_rss, cpu_time, cuda_peak} (MB, s, MB or None); None when the log
    is missing or has no usage line (a job that failed, or one written before this existed)."""
    if not log.is_file():
        return None
    found = None
    with open(log, errors="replace") as fh:
        for line in fh:
            match = LINE.match(line.strip())
            if match:
                found = match
    if found is None:
        return None
    rss, cpu, cuda = found.groups()
    return {"max_rss": float(rss), "cpu_time": float(cpu), "cuda_peak": None if cuda == "NA" else float(cuda)}
