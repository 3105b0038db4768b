#!/usr/bin/env bash
# Starts a throwaway single-node Slurm cluster on 127.0.0.1 for `make test-slurm` (run as root, Debian 12).
#
#   munged -> MariaDB (private datadir) -> slurmdbd -> slurmctld -> slurmd
#
# Accounting (slurmdbd) is part of it on purpose: the Slurm executor plugin polls job states with `sacct`,
# as on most real clusters, and without accounting every poll fails and Snakemake waits forever.
# The node offers two fake GPUs (gres whose "devices" are copies of /dev/null) and two partitions, `cpu`
# and `gpu`, so that profiles/slurm's GPU requests and partition routing are exercised for real. There is
# no GPU: torch computes on the CPU, as in a local run.
#
# State, logs and the database live under $DIFFLAB_SLURM_DIR (default /tmp/difflab-slurm). The config goes
# to /etc/slurm, where every Slurm command looks: a SLURM_CONF elsewhere does not reach the job steps (the
# executor plugin clears SLURM_* variables before its inner srun). A slurm.conf not written by this script
# is never overwritten. .ci/slurm_down.sh stops, by PID, exactly the daemons this script started.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

DIR=${DIFFLAB_SLURM_DIR:-/tmp/difflab-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
ETC=/etc/slurm
MARK="# written by difflab .ci/slurm_up.sh"
NODE=$(hostname -s)
DB_PORT=13306          # not 3306: a developer's own MySQL may listen there
SLURM_PORTS="6817 6818 6819"
PACKAGES="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"

die() { echo "slurm_up: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (installs packages, starts daemons)"

# Wait up to $1 seconds for command $2; on timeout print the tail of log $3 and fail.
waitfor() {
    local seconds=$1 check=$2 log=${3:-}
    for _ in $(seq $((seconds * 2))); do
        if eval "$check" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    [[ -n $log && -f $log ]] && tail -n 20 "$log" >&2
    die "gave up after ${seconds}s waiting for: $check"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A cluster left behind by a killed run would hold the ports: stop it first.
bash "$HERE/slurm_down.sh" >/dev/null 2>&1 || true

# --- packages (idempotent; the lock timeout waits for another apt instead of failing) -----------------
missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=" $pkg"
done
if [[ -n $missing ]]; then
    echo "slurm_up: installing$missing"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
fi

for port in $SLURM_PORTS $DB_PORT; do
    port_open "$port" && die "port $port on 127.0.0.1 is in use (another Slurm or database?); stop it first"
done

if [[ -f $ETC/slurm.conf ]] && ! grep -qxF "$MARK" "$ETC/slurm.conf"; then
    die "$ETC/slurm.conf exists and was not written by this script; not overwriting a real cluster's config"
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{log,run,dev,spool/ctld,spool/d} "$ETC"
chmod 755 "$DIR"
: >"$DIR/started"      # "name pidfile" per daemon this script started; read by slurm_down.sh

# --- munge: authenticates every Slurm message. Reuse a running munged, else start one. -----------------
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    [[ -f /etc/munge/munge.key ]] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- /usr/sbin/munged      # daemonises; writes /run/munge/munged.pid
    waitfor 15 "munge -n | unmunge" /var/log/munge/munged.log
    echo "munged /run/munge/munged.pid" >>"$DIR/started"
fi

# --- MariaDB for slurmdbd, in a private datadir, loopback only --------------------------------------------
DB=$DIR/db
install -d -o mysql -g mysql "$DB"
mariadb-install-db --user=mysql --datadir="$DB" --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
    || { tail -n 20 "$DIR/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
# setsid + redirections: the server must not hold this script's stdout (make would wait for it).
setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$DB/mysqld.sock" \
    --pid-file="$DB/mariadbd.pid" --log-error="$DIR/log/mariadb.log" \
    --bind-address=127.0.0.1 --port=$DB_PORT </dev/null >/dev/null 2>&1 &
echo "mariadbd $DB/mariadbd.pid" >>"$DIR/started"
waitfor 60 "mariadb-admin --socket=$DB/mysqld.sock ping" "$DIR/log/mariadb.log"
mariadb --socket="$DB/mysqld.sock" -u root -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# --- Slurm config. SlurmUser=root: a throwaway cluster for root's jobs; no file ownership to manage. ---
# Memory is scheduled, not enforced (no cgroups). Declare at least 16 GB, with config_overrides so that
# slurmd accepts more than it finds, so that profiles/slurm's requests (8 GB per GPU job) fit on any CI
# machine; the smoke jobs use well under 1 GB each.
mem_mb=$(awk '/^MemTotal:/ {m = int($2 / 1024 * 0.9); print (m > 16000 ? m : 16000)}' /proc/meminfo)
cat >"$ETC/slurm.conf" <<EOF
$MARK
ClusterName=difflab-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# Bind slurmctld, slurmd and srun to 127.0.0.1 only.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container: Slurm schedules by CPUs and memory but does not enforce them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# gres/gpu in sacct's AllocTRES and the job comment (Snakemake puts the rule there) in sacct's Comment.
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue for 5 min (the default), so squeue works as a status command too.
MinJobAge=300
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
# Two fake GPUs, enough for Slurm to schedule --gpus requests. slurmd counts gpu gres by their device
# files, so give it two character devices with /dev/null's numbers (plain files if mknod is not allowed:
# slurmd then logs "not a valid character device" but still counts them).
for i in 0 1; do mknod "$DIR/dev/gpu$i" c 1 3 2>/dev/null || touch "$DIR/dev/gpu$i"; done
printf '%s\n' "$MARK" "NodeName=$NODE Name=gpu File=$DIR/dev/gpu[0-1]" >"$ETC/gres.conf"
cat >"$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
CommunicationParameters=NoInAddrAny
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a readable file (it holds the DB password)

# --- daemons (each daemonises and writes its PidFile) --------------------------------------------------
/usr/sbin/slurmdbd
echo "slurmdbd $DIR/run/slurmdbd.pid" >>"$DIR/started"
waitfor 60 "port_open 6819" "$DIR/log/slurmdbd.log"
/usr/sbin/slurmctld
echo "slurmctld $DIR/run/slurmctld.pid" >>"$DIR/started"
/usr/sbin/slurmd
echo "slurmd $DIR/run/slurmd.pid" >>"$DIR/started"
waitfor 60 "sinfo -h -N -o %T | grep -qx idle" "$DIR/log/slurmd.log"

# The cluster registers itself with slurmdbd; jobs are charged to account `ci`, root's default.
waitfor 30 "sacctmgr -n -P list cluster format=cluster | grep -qx difflab-ci" "$DIR/log/slurmctld.log"
sacctmgr -i add account ci Description=difflab-ci Organization=difflab >/dev/null
sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null

echo "slurm_up: cluster difflab-ci on 127.0.0.1 ($NODE: $(nproc) CPUs, ${mem_mb} MB, 2 fake GPUs;" \
     "partitions cpu, gpu; account ci; logs in $DIR/log)"
