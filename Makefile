# The two commands a new user needs: `make demo` and `make test`.
# Both create a virtual environment in $(VENV) (default .venv) on first use.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Where the local Kafka broker's jars and the demo's log live (see consumer/local/).
CACHE := $(HOME)/.cache/order-push-consumer
TMP := $(or $(TMPDIR),/tmp)

.PHONY: install test test-fast mutation mutation-handmade lint format demo check-mappings clean clean-jars

# setuptools ends every editable install with a notice to mind folders named like the
# package in the working directory; here that folder is the package itself.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

# The tests that need no Kafka broker, browser or database server, on two cores (under a
# minute; docs/testing.md).
FAST := -m "not kafka and not browser and not postgres"
test-fast: install
	$(PY) -m pytest $(FAST) -q -n 2

# Mutation testing (slow, not in CI; docs/testing.md has the score and the time): mutmut
# mutates the dispatch, offset, outcome and rendering code ([tool.mutmut] in pyproject.toml)
# and runs the fast tests that reach each mutant; `mutmut show NAME` shows a survivor. A
# mutant that makes a test wait forever ends its process after 30 s (the mutation
# profile's limit, tests/conftest.py).
# MUTATION_JOBS: mutants tested at once (one per core).
MUTATION_JOBS ?= 2
mutation: install
	$(PY) -m mutmut run --max-children $(MUTATION_JOBS)
	$(PY) -m mutmut results
	$(PY) tests/mutation/handmade.py

# The dispatch bugs of issue 18, planted one at a time: the fast tests must fail on each.
mutation-handmade: install
	$(PY) tests/mutation/handmade.py

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

# The venv, tool caches, build leftovers, the demo's last log, and the data of local
# Kafka brokers that a killed run left behind (a running broker's is kept). Not the
# broker's jars: fetching them again takes minutes (`make clean-jars` removes them).
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf $(CACHE)/demo
	@for dir in $(TMP)/localkafka-*; do \
	  [ -d "$$dir" ] || continue; \
	  if ! command -v pgrep >/dev/null; then echo "kept $$dir (no pgrep to tell if its broker runs)"; \
	  elif pgrep -f -- "$$dir/" >/dev/null; then echo "kept $$dir (its broker is running)"; \
	  else echo "rm -rf $$dir"; rm -rf "$$dir"; fi; \
	done

# The broker's jars (in $(CACHE)/kafka-VERSION, or $$KAFKA_LOCAL_CACHE when set);
# Maven's own repository (~/.m2) is shared with other projects and kept.
clean-jars:
	rm -rf $(CACHE)/kafka-*
	$(if $(KAFKA_LOCAL_CACHE),cd "$(KAFKA_LOCAL_CACHE)" && rm -rf lib pom.xml fetch-complete .lock)
