# The two commands: `make demo` (the loopback chain end to end) and `make test`.
# Both install what they need first (scripts/bootstrap.sh) and start local services if down.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrap-stamp
PYTEST_ARGS ?=

.PHONY: bootstrap services demo test lint format bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	@touch $(STAMP)

bootstrap: $(STAMP)

services:
	scripts/services.sh

demo: bootstrap services
	$(BIN)/runbook demo

test: bootstrap services lint
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests --nbval-lax runbooks

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bootstrap services
	$(BIN)/python benchmarks/run_latency.py
	$(BIN)/python benchmarks/receiver_burst.py

clean:
	rm -rf .sandbox .pytest_cache .ruff_cache
