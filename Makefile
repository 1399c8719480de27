# One command to run, one to test; both install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test lint openapi bench bench-verify

$(BIN)/audit-trail: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(BIN)/audit-trail

up: install
	$(BIN)/audit-trail up

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

openapi: install
	$(BIN)/python -m decision_log.openapi openapi/decision_log.json
	$(BIN)/python -m verifier.openapi openapi/verifier.json

bench: install
	$(BIN)/python -m bench.ingest

bench-verify: install
	$(BIN)/python -m bench.verify
