# The two commands: `make demo` (the loopback chain end to end) and `make test`.
# Both install what they need first (scripts/bootstrap.sh) and start local services if down.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrap-stamp
PYTEST_ARGS ?=

.PHONY: bootstrap services demo test test-pure lint format bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	@touch $(STAMP)

bootstrap: $(STAMP)

services:
	scripts/services.sh

demo: bootstrap services
	$(BIN)/runbook demo

# Pure tests and the runbooks under nbval first, in a network namespace where nothing listens
# (so they provably need no service), then everything that talks to PostgreSQL, Redis,
# Prometheus or Alertmanager.
test: bootstrap services lint
	scripts/offline.sh $(BIN)/python -m pytest $(PYTEST_ARGS) -m "not services" tests --nbval-lax runbooks
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m services tests

# While working: the pure tests only, no services needed.
test-pure: bootstrap
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not services" tests

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bootstrap services
	$(BIN)/python benchmarks/run_latency.py
	$(BIN)/python benchmarks/receiver_burst.py

clean:
	rm -rf .sandbox .pytest_cache .ruff_cache
