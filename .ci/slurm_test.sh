#!/usr/bin/env bash
# `make test-slurm`: a throwaway single-node Slurm cluster on 127.0.0.1 (.ci/slurm_up.sh), the tests marked
# `slurm` against it (tests/workflow/test_slurm.py), and the cluster stopped again (.ci/slurm_down.sh) whatever
# happens: success, failure, timeout, Ctrl-C or kill. Needs root (apt, daemons). Extra arguments go to
# pytest (e.g. -k failing).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# One run at a time per machine (one /etc/slurm, fixed ports). slurm_up.sh then stops whatever a killed
# earlier run left behind. The daemons must not inherit the lock (9>&- below), or it would outlive us.
exec 9>/tmp/difflab-slurm-test.lock
flock -n 9 || { echo "slurm_test: another make test-slurm is running on this machine" >&2; exit 1; }

# pytest and every Snakemake it starts form one process group (their timeouts use --foreground, which
# keeps them in it), so this can stop all of them by its id before stopping the cluster. SIGINT first:
# on it Snakemake cancels its Slurm jobs (on SIGTERM it would wait for them to finish).
stop_everything() {
    if [[ -n ${tests:-} ]] && kill -0 -- "-$tests" 2>/dev/null; then
        kill -INT -- "-$tests"
        for _ in $(seq 40); do kill -0 -- "-$tests" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$tests" 2>/dev/null || true
    fi
    bash .ci/slurm_down.sh
}
trap stop_everything EXIT
trap 'exit 130' INT    # a signal ends the script through the EXIT trap
trap 'exit 143' TERM

start=$SECONDS
timeout --foreground -k 10 900 bash .ci/slurm_up.sh 9>&-    # apt install on a clean machine: ~20 s; else ~6 s
echo "slurm_test: cluster up in $((SECONDS - start)) s"
rm -f results/slurm_timings.txt
# Each Snakemake run in the tests has its own timeout; this one bounds them all. In the background and
# waited for, so that a signal reaches the traps at once.
setsid timeout --foreground -k 30 2400 "$VENV/bin/pytest" -q -ra -m slurm tests/workflow/test_slurm.py "$@" 9>&- &
tests=$!
wait "$tests"
if [[ -f results/slurm_timings.txt ]]; then
    echo "slurm_test: timings (also in results/slurm_timings.txt):"
    cat results/slurm_timings.txt
fi
