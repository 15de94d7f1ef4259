# The README's two commands:  `make repro` (set up + run the default pipeline)  and  `make test`.
# Both are idempotent: the virtual environment is (re)built only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# cpu = faiss-cpu; GPU users: make EXTRAS=gpu,bench,dev,ray,files,hf,live CONSTRAINTS= (see README)
EXTRAS ?= cpu,bench,dev,ray,files,hf,live
CONSTRAINTS ?= -c constraints.txt
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# the stages in dvc.yaml call `embridge`: put the virtual environment's bin/ first on PATH
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test lint bench clean-venv

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

repro: setup
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "dvc needs a git repository: run 'git init && git add -A && git commit -m init' first"; exit 1; }
	$(BIN)/dvc repro
	@echo; echo "results: reports/summary.md (plots in reports/plots/, metrics in metrics/)"

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check pipeline stages tests bench

bench: setup
	$(BIN)/python bench/store.py
