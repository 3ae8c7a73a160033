# Two commands on a fresh machine with only python3:
#   make run    create .venv, install, migrate, start the server on the embedded engine
#   make test   install what the tests need and run them
# Also: make lint (ruff, mypy, buf lint, generated-code check), make protos (regenerate),
#       make bench (bench/ingest_bench.py, then bench/evaluation_bench.py: ingest, snapshot, freshness
#       and export figures beside their limits; fails when either misses a target).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
PACKAGES := pyproject.toml clients/python/pyproject.toml

.PHONY: run test lint protos bench clean help

help:
	@sed -n 's/^#   //p; s/^# Also: //p; s/^#       //p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python $(PACKAGES)
	$(BIN)/pip install --quiet -e ./clients/python -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	@touch $@

run: $(VENV)/.installed
	$(BIN)/feedback migrate
	exec $(BIN)/feedback serve

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

$(BUF):
	npm install --no-save --silent @bufbuild/buf@1.75.0

lint: $(VENV)/.installed-dev $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service tests clients/python/src/feedback_client clients/python/scripts
	$(BIN)/mypy
	cd protos && ../$(BUF) lint
	$(BIN)/python clients/python/scripts/generate_protos.py --check

# Both scripts always run; the target fails when either of them missed a limit.
bench: $(VENV)/.installed-dev
	@status=0; \
	$(BIN)/python bench/ingest_bench.py || status=1; \
	$(BIN)/python bench/evaluation_bench.py || status=1; \
	exit $$status

protos: $(VENV)/.installed-dev
	$(BIN)/python clients/python/scripts/generate_protos.py

clean:
	rm -rf $(VENV) node_modules data
