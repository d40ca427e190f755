# The few commands a person types. Everything runs from the project's own
# virtualenv (.venv), created on first use, so `make test` works in a fresh
# clone with nothing but a Python 3.11+ interpreter.
#
#   make test PYTEST_ARGS="-k presence -x"     run some tests
#   make run                                   run one embedded node on :4000
#   make PYTHON=python3.12 venv                pick the interpreter for .venv

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Touched after a successful install: the install re-runs only when
# pyproject.toml is newer (a dependency was added), not on every command.
STAMP := $(VENV)/.installed

PYTEST_ARGS ?=
RUN_ARGS ?=
BENCH_ARGS ?=

PROTO_DIR := proto
GEN_DIR := whispr/grpc/gen

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench proto services clean distclean phoenix-js

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install the project with its dev tools

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: venv ## run one node (embedded SQLite + in-process broker unless WHISPR_* say otherwise)
	$(VENV)/bin/whispr serve $(RUN_ARGS)

# The official phoenix.js client, for the end-to-end test (tests/gateway/test_phoenix_js.py).
# Installed from npm into .cache/phoenix-js when npm is there; otherwise that test is skipped
# (and fails under WHISPR_REQUIRE_SERVICES=1).
PHOENIX_JS := .cache/phoenix-js
export WHISPR_PHOENIX_JS ?= $(abspath $(PHOENIX_JS))

phoenix-js: $(PHOENIX_JS)/node_modules/.installed ## install the phoenix npm client used by the tests

$(PHOENIX_JS)/node_modules/.installed:
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(PHOENIX_JS) && cd $(PHOENIX_JS) && \
		{ test -f package.json || echo '{"private": true}' > package.json; } && \
		npm install --no-audit --no-fund --silent phoenix@1.8 ws@8 && \
		touch node_modules/.installed; \
	else echo "npm not found: the phoenix.js end-to-end test will be skipped"; fi

# pytest exits 5 when it collected no test (an empty selection, or a tree
# with no tests yet): reported, not treated as a failure.
test: venv phoenix-js ## run the tests (PYTEST_ARGS="..." to select)
	@$(PY) -m pytest -q $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected"; exit 0; fi; \
	exit $$status

lint: venv ## ruff check, ruff format --check, mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: venv ## run the load generator against a node (whispr.bench)
	$(PY) -m whispr.bench $(BENCH_ARGS)

# scripts/protoc.py runs grpcio-tools' protoc and makes the imports between
# generated modules absolute (whispr.grpc.gen.x_pb2), see its docstring.
proto: venv ## regenerate the gRPC stubs in whispr/grpc/gen from proto/**/*.proto
	$(PY) scripts/protoc.py --proto-dir $(PROTO_DIR) --out $(GEN_DIR)

services: ## start local PostgreSQL and Redis unless they are already up
	bash scripts/services.sh

clean: ## remove caches and build output (keeps .venv, databases and bench results)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV) .cache
