# The two commands a new user needs: `make demo` and `make test`.
# Both create a virtual environment in $(VENV) (default .venv) on first use.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install test lint format demo check-mappings

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check consumer tests
	$(PY) -m ruff format --check consumer tests
	$(PY) -m mypy consumer

format: install
	$(PY) -m ruff check --fix consumer tests
	$(PY) -m ruff format consumer tests

check-mappings: install
	$(PY) -m consumer mappings check mappings

demo: install
	$(PY) -m consumer demo
