# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: serve test lint prerequisites

# Serving needs only the runtime requirements (seconds after the download).
$(RUNTIME): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV)

## Start the hub on the embedded SQLite database (nacritan.db) at http://127.0.0.1:8080
serve: $(RUNTIME)
	$(PY) -m hub serve

## Install what the suite needs (Debian packages, MariaDB and Redis started), then run all of it
test: prerequisites $(DEV)
	$(PY) -m pytest --durations=15

prerequisites:
	bash scripts/test-prerequisites.sh

lint: $(DEV)
	$(VENV)/bin/ruff check hub parsers storage tests bench
	$(VENV)/bin/mypy
