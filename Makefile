# difflab — the two commands: `make report` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.difflab-installed
CORES ?= all

.PHONY: install report smoke laptop default dry-run test test-fast test-slurm bench repeatability clean help

help:
	@echo "make report    run the whole DAG (profiles/default with CUDA, else profiles/laptop) -> results/report/index.html"
	@echo "make test      unit tests + one real end-to-end smoke run (what CI runs)"
	@echo "make test-slurm  the smoke DAG on a throwaway Slurm cluster on 127.0.0.1 (root; CI runs it too)"
	@echo "make smoke | laptop | default   run that profile explicitly"
	@echo "make dry-run   print the plan of every profile without running anything"
	@echo "make bench     speed/memory benchmarks (ratios measured in one run)"
	@echo "make repeatability   train and sample twice: bit-identical? largest difference?"

# Creates the venv if missing and installs the pinned dependencies and the package (editable).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	@profile=$$($(PY) -c 'import torch; print("default" if torch.cuda.is_available() else "laptop")'); \
	if [ "$$profile" = default ]; then echo "difflab: CUDA is available: using profiles/default (the full settings)"; \
	else echo "difflab: no CUDA device: using profiles/laptop (CPU-sized; about 15 min on 2 cores)"; fi; \
	$(SNAKEMAKE) --workflow-profile profiles/$$profile --cores $(CORES) && \
	echo "difflab: report: $(CURDIR)/results/report/index.html"

smoke laptop default: $(STAMP)
	$(SNAKEMAKE) --workflow-profile profiles/$@ --cores $(CORES)

dry-run: $(STAMP)
	@for p in default smoke laptop; do $(SNAKEMAKE) -n --quiet rules --workflow-profile profiles/$$p || exit 1; done

test: $(STAMP)
	$(VENV)/bin/pytest -q -ra -m "not slurm"

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -ra -m "not e2e and not browser and not slurm"

# Installs and starts a single-node Slurm cluster on 127.0.0.1 (apt; needs root), runs the tests marked
# `slurm` against it and stops it again, also on failure (.ci/slurm_test.sh; README "Running on a Slurm cluster").
test-slurm: $(STAMP)
	VENV=$(VENV) bash .ci/slurm_test.sh

bench: $(STAMP)
	$(PY) -m difflab.bench

# Train and sample twice; report bit-identity and the largest difference (full size on CUDA, small on CPU).
repeatability: $(STAMP) results/data/mnist.npz
	@args=$$($(PY) -c 'import torch; print("--nondeterministic" if torch.cuda.is_available() else "--hidden 16 --train-images 4096 --samples 100")'); \
	$(PY) -m difflab.repeatability $$args

results/data/mnist.npz: | $(STAMP)
	$(PY) -m difflab data

clean:
	rm -rf results .snakemake
