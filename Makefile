# One command to run, one to test; both install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test lint openapi fuzz bench bench-verify bench-sdk

$(BIN)/audit-trail: pyproject.toml sdk/python/pyproject.toml
	@echo "Installing audit-trail and its dependencies into $(VENV) (about 2 minutes the first time)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@$(BIN)/pip install --quiet --disable-pip-version-check -e 'sdk/python[receipts]'
	@touch $@

install: $(BIN)/audit-trail

up: install
	$(BIN)/audit-trail up

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# schemathesis, pinned, in a virtual environment of its own: its dependencies never decide the
# service's.
.venv-fuzz/bin/schemathesis: tests/fuzz/requirements.txt
	$(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/pip install --quiet --upgrade pip
	.venv-fuzz/bin/pip install --quiet -r tests/fuzz/requirements.txt
	touch $@

fuzz: install .venv-fuzz/bin/schemathesis
	$(BIN)/python -m tests.fuzz.run

openapi: install
	$(BIN)/python -m decision_log.openapi openapi/decision_log.json
	$(BIN)/python -m verifier.openapi openapi/verifier.json

bench: install
	$(BIN)/python -m bench.ingest

bench-verify: install
	$(BIN)/python -m bench.verify

bench-sdk: install
	$(BIN)/python -m bench.sdk
