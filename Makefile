# One command per everyday task. `make demo` and `make test` do all set-up on a fresh
# Debian/Ubuntu machine (apt packages, the Python venv, the npm CDK CLI) before they run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_MAJOR ?= 15
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Keep user-wide AWS settings from leaking into tests and the demo.
export AWS_CONFIG_FILE := /dev/null
export AWS_SHARED_CREDENTIALS_FILE := /dev/null

.PHONY: setup system demo test lint typecheck unit synth bench clean

setup: system $(VENV)/.installed $(CDK)

# PostgreSQL server + client binaries (ephemeral clusters for tests, demo and local verify),
# pgbench for the benchmarks. Installed only when missing; needs root or sudo.
system:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v node >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
	    postgresql-$(PG_MAJOR) postgresql-client-$(PG_MAJOR) postgresql-contrib nodejs npm; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The CDK CLI v2 (v3 rejects this aws-cdk-lib's cloud assembly).
$(CDK):
	npm install --no-save --no-package-lock --no-audit --no-fund --prefix . aws-cdk@2

demo: setup
	$(BIN)/backproof demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONPATH=functions:. $(BIN)/lint-imports
	$(BIN)/hadolint functions/task/Dockerfile

synth: setup
	$(CDK) synth --quiet > /dev/null

test: setup lint synth
	$(BIN)/pytest -n 2 --dist loadfile

unit: setup
	$(BIN)/pytest tests/unit

bench: setup
	$(BIN)/python bench/bench_backup.py
	$(BIN)/python bench/bench_upload_memory.py
	$(BIN)/python bench/bench_verify.py

clean:
	rm -rf $(VENV) node_modules cdk.out layers/build .pytest_cache .mypy_cache .ruff_cache
