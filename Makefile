# The README's two commands:  `make repro` (set up + run the default pipeline)  and  `make test`.
# Both are idempotent: the virtual environment is (re)built only when pyproject.toml, setup.py, the C file it compiles or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# cpu = faiss-cpu; GPU users: make EXTRAS=gpu,bench,dev,ray,files,hf,live CONSTRAINTS= (see README)
EXTRAS ?= cpu,bench,dev,ray,files,hf,live
CONSTRAINTS ?= -c constraints.txt
# LanguageBind lives in a second environment (transformers 4; see pyproject.toml, extra languagebind)
VENV_LB ?= .venv-lb
EXTRAS_LB ?= cpu,files,languagebind,data,dev
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# the stages in dvc.yaml call `embridge`: put the virtual environment's bin/ first on PATH
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup setup-lb repro test test-lb lint bench clean-venv

$(VENV)/.installed: pyproject.toml setup.py pipeline/evaluation/_countc.c pipeline/methods/_noisec.c pipeline/_rowsc.c constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

$(VENV_LB)/.installed: pyproject.toml setup.py pipeline/evaluation/_countc.c pipeline/methods/_noisec.c pipeline/_rowsc.c constraints.txt Makefile
	test -x $(VENV_LB)/bin/python || $(PYTHON) -m venv $(VENV_LB)
	$(VENV_LB)/bin/python -m pip install -q --upgrade pip
	$(VENV_LB)/bin/python -m pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS_LB)]"
	touch $@

setup-lb: $(VENV_LB)/.installed

repro: setup
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "dvc needs a git repository: run 'git init && git add -A && git commit -m init' first"; exit 1; }
	$(BIN)/dvc repro
	@echo; echo "results: reports/summary.md (plots in reports/plots/, metrics in metrics/)"

# the main suite, then the LanguageBind adapter's tests in its own environment
test: setup
	$(BIN)/python -m pytest
	$(MAKE) test-lb

test-lb: setup-lb
	PATH=$(abspath $(VENV_LB))/bin:$$PATH $(VENV_LB)/bin/python -m pytest tests/test_languagebind.py

lint: setup
	$(BIN)/ruff check pipeline stages tests bench

bench: setup
	$(BIN)/python bench/store.py
