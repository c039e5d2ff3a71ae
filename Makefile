# bayesid — set-up, demo and tests.  `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The set-up uses Python 3.12 (the minor version the lock file was resolved for): python3.12 on PATH if
# it really runs (pyenv shims may not), else pyenv's newest 3.12.x.  Override: make PYTHON_BOOT=/path/to/python3.12
PYTHON_BOOT ?= $(shell if python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then command -v python3.12; exit 0; fi; \
	  root=$${PYENV_ROOT:-$$HOME/.pyenv}; for p in $$(ls -d $$root/versions/3.12.* 2>/dev/null | sort -rV); do \
	  if [ -x $$p/bin/python3 ]; then echo $$p/bin/python3; exit 0; fi; done; \
	  if python3 -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then command -v python3; fi)
# uv installs the locked stack (requirements/lock.txt, hashes checked); pinned so the installer is reproducible too.
UV_VERSION ?= 0.13.9
LOCK ?= requirements/lock.txt
OUT ?= bayesid-demo

.PHONY: setup browser demo test test-all bench lock clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	@if [ -z "$(PYTHON_BOOT)" ]; then echo "No Python 3.12 found: install one (e.g. 'pyenv install 3.12') or run 'make PYTHON_BOOT=/path/to/python3.12'"; exit 1; fi
	@echo "Using $(PYTHON_BOOT)"
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip install -q --python $(PY) --require-hashes -r $(LOCK)
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(PY) -m bayesid.versions
	@touch $@

# Refresh the lock after changing dependencies in pyproject.toml (resolves the newest versions allowed).
lock:
	@test -x $(VENV)/bin/uv || { $(PYTHON_BOOT) -m venv $(VENV) && $(PY) -m pip install -q "uv==$(UV_VERSION)"; }
	$(VENV)/bin/uv pip compile pyproject.toml --extra all --python-version 3.12 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes --custom-compile-command "make lock" -o $(LOCK)

setup: $(VENV)/.installed

# The main job on the built-in default: the gait model (BSLIP walking, pelvis accelerometer) — fit,
# diagnose, report — then rank its sensor designs before any data are collected.
DEMO_MODEL ?= gait.bslip
demo: setup
	$(VENV)/bin/bayesid report $(DEMO_MODEL) -o $(OUT)/report.html
	$(VENV)/bin/bayesid designs $(DEMO_MODEL) -o $(OUT)/designs.html

# Headless Chromium for the report's browser test (Debian package; skipped with a message where it can't be had).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "chromium could not be installed: tests/test_report_browser.py will be skipped"

test: setup browser
	$(PY) -m bayesid.versions
	$(PY) -m pytest -q -m "not slow or slice" tests

test-all: setup browser
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/diagnostics.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
