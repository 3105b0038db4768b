#!/usr/bin/env bash
# Stops the cluster .ci/slurm_up.sh started: cancels its jobs, then stops each daemon it started by PID
# (newest first), TERM and after 15 s KILL. Daemons it did not start (a munged that was already running)
# are left alone. Keeps $DIFFLAB_SLURM_DIR/log for post-mortems, removes the rest and the config files in
# /etc/slurm that slurm_up.sh wrote. Safe to run twice.
set -uo pipefail

DIR=${DIFFLAB_SLURM_DIR:-/tmp/difflab-slurm}
[[ -f $DIR/started ]] || exit 0

# Jobs first: their processes (under slurmstepd) outlive slurmd, so cancel them while slurmctld is up.
if grep -q '^slurmctld ' "$DIR/started" && timeout 10 squeue -h >/dev/null 2>&1; then
    timeout 10 scancel --full --user root 2>/dev/null
    for _ in $(seq 30); do
        [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) ]] && break
        sleep 1
    done
    left=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    [[ -n $left ]] && echo "slurm_down: jobs still listed after 30 s: $left" >&2
fi

stop() {  # name pidfile: stop the process in pidfile if it is still that daemon (PIDs get reused)
    local name=$1 pidfile=$2 pid
    pid=$(cat "$pidfile" 2>/dev/null) || { echo "slurm_down: $name: no pid file $pidfile (not running?)"; return; }
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 0
    kill -TERM "$pid"
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "slurm_down: $name ($pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
    kill -KILL "$pid"
}

tac "$DIR/started" | while read -r name pidfile; do
    stop "$name" "$pidfile"
    [[ $name == munged ]] && rm -rf /run/munge
done
rm -f "$DIR/started"
for conf in /etc/slurm/{slurm,gres,slurmdbd}.conf; do
    grep -qxF "# written by difflab .ci/slurm_up.sh" "$conf" 2>/dev/null && rm -f "$conf"
done
find "$DIR" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
echo "slurm_down: stopped; logs kept in $DIR/log"
