# Two commands on a fresh machine with only python3:
#   make run    create .venv, install, migrate, start the server on the embedded engine
#   make test   install what the tests need and run them
# Also: make lint (ruff, mypy, buf lint, generated-code check), make protos (regenerate),
#       make bench (bench/evaluation_bench.py: snapshot, freshness and export figures beside their limits).

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

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/evaluation_bench.py

protos: $(VENV)/.installed-dev
	$(BIN)/python clients/python/scripts/generate_protos.py

clean:
	rm -rf $(VENV) node_modules data
