# SemNexus: the two commands are `make demo` and `make test`; both set up what
# they need. Everything else is a building block of those two.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

PY ?= python3.11
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
STAMP := .stack/stamps
PYTEST_ARGS ?=

FORCE:

.PHONY: help setup up down status topics lint test test-fast demo bench clean-stack

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP):
	@mkdir -p $(STAMP)

## ---- setup: idempotent; a second run takes seconds ------------------------
setup: $(STAMP)/uv $(STAMP)/venv $(STAMP)/kafka $(STAMP)/jaeger $(STAMP)/model $(STAMP)/chromium  ## install everything a fresh machine lacks
	@echo "setup: done"

$(STAMP)/uv: | $(STAMP)
	@if ! command -v uv >/dev/null 2>&1 && [ ! -x $(HOME)/.local/bin/uv ]; then \
	  echo "setup: installing uv $(UV_VERSION) from PyPI"; \
	  $(PY) -m pip install --quiet --user "uv==$(UV_VERSION)"; fi
	@touch $@

$(STAMP)/venv: $(if $(wildcard $(VENV)/bin/python),,FORCE) pyproject.toml uv.lock shared/pyproject.toml $(wildcard services/*/pyproject.toml) infra/simulator/pyproject.toml | $(STAMP)/uv
	@echo "setup: syncing the workspace environment (first run downloads torch, ~4 GB)"
	@$(UV) sync --all-packages --frozen --python $(PY)
	@touch $@

$(STAMP)/kafka: $(if $(wildcard infra/kafka/lib/kafka_2.13-*.jar),,FORCE) infra/kafka/pom.xml | $(STAMP)
	@echo "setup: fetching Apache Kafka jars from Maven Central"
	@command -v mvn >/dev/null || { echo "error: Maven (mvn) is missing; install it (apt-get install maven)"; exit 1; }
	@mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies
	@touch $@

$(STAMP)/jaeger: $(if $(wildcard infra/jaeger/bin/jaeger),,FORCE) infra/jaeger/go.mod infra/jaeger/build.sh | $(STAMP)
	@echo "setup: building Jaeger v2 from the Go module proxy (several minutes the first time)"
	@bash infra/jaeger/build.sh
	@touch $@

$(STAMP)/model: $(STAMP)/venv
	@echo "setup: exporting the embedding model to ONNX (once) and checking it loads offline"
	@$(VENV)/bin/python -m semnexus_cache_lookup.onnx_export
	@$(VENV)/bin/python -m semnexus_cache_lookup.embedder --check --embedder torch --embedder onnx-fp32 --embedder onnx-int8
	@touch $@

# Debian's chromium renders the ledger's page in a test.
$(STAMP)/chromium: | $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "setup: installing Debian's chromium (headless page test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "setup: chromium missing and not root: the page test will skip (fail under CI)"; fi; fi
	@touch $@

## ---- the local stack -------------------------------------------------------
up: setup  ## start Kafka, Milvus and Jaeger on 127.0.0.1 and apply the topics
	@bash infra/stack/kafka.sh start
	@$(VENV)/bin/semnexus topics apply
	@bash infra/stack/milvus.sh start
	@bash infra/stack/jaeger.sh start

down:  ## stop exactly what `make up` (or `make demo KEEP=1`) started
	@bash infra/stack/services.sh stop
	@bash infra/stack/jaeger.sh stop
	@bash infra/stack/milvus.sh stop
	@bash infra/stack/kafka.sh stop

status:  ## one line per component
	@bash infra/stack/services.sh status
	@bash infra/stack/kafka.sh status
	@bash infra/stack/milvus.sh status
	@bash infra/stack/jaeger.sh status

topics:  ## apply the declared topics (idempotent)
	@$(VENV)/bin/semnexus topics apply

## ---- checks -----------------------------------------------------------------
lint: $(STAMP)/venv  ## ruff (check + format) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared/src services/*/src infra/simulator/src

test-fast: $(STAMP)/venv  ## the tiers that need nothing running
	$(VENV)/bin/pytest -m "not kafka and not milvus and not e2e" $(PYTEST_ARGS)

test: setup  ## setup, start the stack, lint, every test tier, stop the stack
	@bash infra/stack/run-with-stack.sh $(MAKE) --no-print-directory --keep-going lint test-all

test-all:
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## ---- the main job -------------------------------------------------------------
demo: setup  ## the whole local stack, a burst of traffic, a report (KEEP=1 leaves it running)
	@WITH_SERVICES=1 bash infra/stack/run-with-stack.sh $(VENV)/bin/semnexus demo $(DEMO_ARGS)

bench: setup  ## benchmarks; figures go to BENCHMARKS.md
	@bash infra/stack/run-with-stack.sh $(VENV)/bin/python -m tests.bench

clean-stack: down  ## delete the local stack's data and logs
	rm -rf .stack/data .stack/logs
