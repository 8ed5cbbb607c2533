# Two set-up-and-go targets (see README.md): `make demo` and `make test`.
# Both create .venv and install everything on a fresh machine first.
#
# torch is pinned to the 2.13.0 CPU build on purpose: a bare `torch` requirement pulls a
# multi-GB CUDA build. On a GPU machine install a CUDA torch into .venv first; the
# install step keeps a torch that is already there.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.symato-installed
TORCH ?= torch==2.13.0
CORES ?= all

.PHONY: setup demo test lint bench clean-results

setup: $(STAMP)

# setup.py and the C source too: an editable install builds the tokenizer's C extension
# (symato/text/_fastdecode.c) in place once and does not rebuild it when the source changes.
$(STAMP): pyproject.toml setup.py symato/text/_fastdecode.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test,report,slurm]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES)

# SYMATO_REQUIRE_KERNELS=cpu: the C++ kernels must build; without a compiler their tests
# fail instead of skipping (tests/_kernels.py), so a green `make test` (CI: .ci/run)
# always includes kernel coverage.
test: setup
	$(VENV)/bin/ruff check .
	SYMATO_REQUIRE_KERNELS=cpu $(VENV)/bin/pytest

# Inference cost against context length, every architecture at L6-D512 (issue #28; a few
# minutes on 2 CPU cores; docs/benchmarks.md). BENCH_ARGS adds options, e.g.
# BENCH_ARGS="--device cuda --contexts 256 1024 4096 16384 65536".
BENCH_ARGS ?=
bench: setup
	$(PY) benchmarks/bench_context.py --markdown --json results/bench/context-full.json \
		--figure results/plots/context_full.png $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakemake --lint

clean-results:
	rm -rf results .snakemake
