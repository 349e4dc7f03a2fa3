# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## Start the hub on the embedded SQLite database (nacritan.db) at http://127.0.0.1:8080
serve: $(STAMP)
	$(PY) -m hub serve

## Run the whole test suite (needs MariaDB on 127.0.0.1:3306 and Redis on 6379; .ci/run starts them)
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check hub parsers storage tests bench
	$(VENV)/bin/mypy
