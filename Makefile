# bayesid — set-up, demo and tests.  `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Find a Python >= 3.12: python3.13/python3.12 on PATH (if they really run), else pyenv's.
PYTHON_BOOT ?= $(shell for c in python3.13 python3.12; do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then command -v $$c; exit 0; fi; done; \
	  root=$${PYENV_ROOT:-$$HOME/.pyenv}; for p in $$(ls -d $$root/versions/3.1[2-9]* 2>/dev/null | sort -rV); do \
	  if [ -x $$p/bin/python3 ]; then echo $$p/bin/python3; exit 0; fi; done; \
	  if python3 -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then command -v python3; fi)
OUT ?= bayesid-demo

.PHONY: setup demo test test-all bench clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON_BOOT)" ]; then echo "No Python >= 3.12 found: install one (e.g. 'pyenv install 3.12') or run 'make PYTHON_BOOT=/path/to/python3.12'"; exit 1; fi
	@echo "Using $(PYTHON_BOOT)"
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]"
	@touch $@

setup: $(VENV)/.installed

# The main job on the built-in default: the gait model (BSLIP walking, pelvis accelerometer) — fit,
# diagnose, report — then rank its sensor designs before any data are collected.
DEMO_MODEL ?= gait.bslip
demo: setup
	$(VENV)/bin/bayesid report $(DEMO_MODEL) -o $(OUT)/report.html
	$(VENV)/bin/bayesid designs $(DEMO_MODEL) -o $(OUT)/designs.html

test: setup
	$(PY) -m pytest -q -m "not slow or slice" tests

test-all: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/diagnostics.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
