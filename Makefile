# Two entry points for a fresh machine: `make all` (the pipeline on the embedded default) and
# `make test`. Both set up .venv first; the stamp file makes setup a no-op once done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE ?= 1

.PHONY: setup all report test test-slow test-cluster test-faults test-envs bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/setup.sh $(PYTHON) $(VENV)
	touch $@

all: setup
	$(BIN)/python scripts/unlock_after_crash.py $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete all

# report.html: every figure of the run with its caption and the results table, after `make all`.
report: setup
	$(BIN)/snakemake --cores $(CORES) --report report.html all

test: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow

# A real one-node SLURM cluster on this machine (needs root: apt and daemons), then the pipeline
# through the project's SLURM profile. Fails, saying what is missing, when SLURM cannot start.
test-cluster: setup
	bash scripts/slurm_up.sh
	$(BIN)/pytest -q -m cluster

# kill -9 of the synthetic pipeline at FAULT_TRIALS (default 20) random moments, each rerun to the
# end and compared byte for byte with an uninterrupted run.
test-faults: setup
	$(BIN)/pytest -q -m faults

# Each conda env's pip packages, alone in a fresh venv, import what its rules run (~5 min).
test-envs: setup
	$(BIN)/pytest -q -m slow tests/test_envs.py

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data results runs logs .snakemake mlflow.db mlruns report.html
