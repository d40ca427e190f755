# The few commands a person types. Everything runs from the project's own
# virtualenv (.venv), created on first use, so `make test` works in a fresh
# clone with nothing but a Python 3.11+ interpreter.
#
#   make test PYTEST_ARGS="-k presence -x"     run some tests
#   make run                                   run one embedded node on :4000
#   make PYTHON=python3.12 venv                pick the interpreter for .venv
#
# What gets installed is locked: uv.lock pins every dependency, with hashes, for
# every extra. uv (itself pinned with hashes in scripts/uv-requirements.txt and
# installed with pip into .cache/uv) installs from the lock and never resolves:
# `--frozen` fails rather than installing something the lock does not name.
# `make lock` is the one way the lock changes (see the README).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

UV_DIR := .cache/uv
UV := $(UV_DIR)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1
# --inexact: adding one extra's packages never removes another's (make run after make test).
SYNC := $(UV) sync --frozen --inexact --quiet --python $(PYTHON)

# Touched after a successful install, one per set of extras: an install re-runs
# only when pyproject.toml or uv.lock is newer, not on every command.
STAMP_RUN := $(VENV)/.installed-run
STAMP_BENCH := $(VENV)/.installed-bench
STAMP_DEV := $(VENV)/.installed-dev

PYTEST_ARGS ?=
RUN_ARGS ?=
BENCH_ARGS ?=
SOAK_ARGS ?=
CHAOS_ARGS ?=

PROTO_DIR := proto
GEN_DIR := whispr/grpc/gen

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench soak chaos lock proto services clean distclean phoenix-js

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP_DEV) ## create .venv and install the project with its dev tools (locked)

$(UV): scripts/uv-requirements.txt
	@test -x $(UV_DIR)/bin/python || $(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/python -m pip install --quiet --require-hashes -r scripts/uv-requirements.txt
	@touch $@

# The runtime alone: no test, lint, stub-generating or plotting tools.
$(STAMP_RUN): pyproject.toml uv.lock | $(UV)
	$(SYNC)
	@touch $@

$(STAMP_BENCH): pyproject.toml uv.lock | $(UV)
	$(SYNC) --extra bench
	@touch $@

# Exact for the suite: .venv then holds what uv.lock names for dev, nothing else.
$(STAMP_DEV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --python $(PYTHON) --extra dev
	@touch $@ $(STAMP_RUN) $(STAMP_BENCH)

# The web client's address, and how to sign in as two users (one browser window each: the
# page keeps its token per tab). The ports are the node's defaults unless WHISPR_* say otherwise.
WEB_URL = http://$(or $(WHISPR_HOST),127.0.0.1):$(or $(WHISPR_HTTP_PORT),4080)/app/

run: $(STAMP_RUN) ## run one node (embedded SQLite + in-process broker unless WHISPR_* say otherwise)
	@echo ""
	@echo "  Web client: $(WEB_URL)"
	@echo "  Two users, each in a browser window of their own: open the links these print"
	@echo "  (or paste the token on the page), in another terminal:"
	@echo '    echo "$(WEB_URL)#token=$$($(VENV)/bin/whispr token alice)"'
	@echo '    echo "$(WEB_URL)#token=$$($(VENV)/bin/whispr token bob)"'
	@echo ""
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

lint: venv ## uv.lock matches pyproject.toml; ruff check, ruff format --check, mypy --strict
	$(UV) lock --check --python $(PYTHON)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP_BENCH) ## run the load generator against a node (whispr.bench)
	$(PY) -m whispr.bench $(BENCH_ARGS)

# 30 minutes by default; SOAK_ARGS="--duration 300 --nodes 2" to change the run.
soak: $(STAMP_BENCH) ## soak run: steady traffic and reconnect churn, do the node's resources stay flat?
	$(VENV)/bin/whispr soak $(SOAK_ARGS)

# Opt-in, never part of make test: it starts its own PostgreSQL and Redis (temp dir, free
# ports) and stops them on purpose. About 8 minutes; CHAOS_ARGS="--duration 90 --outage-s 10".
chaos: $(STAMP_BENCH) ## fault run: kill nodes, stop Redis and PostgreSQL under traffic; anything lost?
	$(VENV)/bin/whispr chaos $(CHAOS_ARGS)

# Re-resolve every dependency to its newest allowed version, then run the whole
# suite on the result: the lock changes on purpose, and only with a green suite.
lock: $(UV) ## refresh uv.lock to the newest versions pyproject.toml allows, then run the tests
	$(UV) lock --upgrade --python $(PYTHON)
	$(MAKE) test

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
