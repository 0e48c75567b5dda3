# The two commands: `make demo` (the loopback chain end to end) and `make test`.
# Both install what they need first (scripts/bootstrap.sh) and start local services if down.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrap-stamp
PYTEST_ARGS ?=
# Two processes share the CPU (pytest-xdist); a file runs whole in one of them (a notebook's cells
# under nbval share their kernel). `make test XDIST=` runs in one process.
XDIST ?= -n 2 --dist loadfile
PYTEST := $(BIN)/python -m pytest -p tests.early
# Bytecode caches, which this machine's environment turns off: every test process and every
# kernel would otherwise compile the whole library from source again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: bootstrap services demo test test-pure lint format bench clean image image-test

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
	scripts/offline.sh $(PYTEST) $(XDIST) $(PYTEST_ARGS) -m "not services" tests --nbval-lax --nbval-kernel-name runbook-forked runbooks
	$(PYTEST) $(XDIST) $(PYTEST_ARGS) -m services tests

# While working: the tests that need no service (without nbval), where nothing listens.
test-pure: bootstrap
	scripts/offline.sh $(PYTEST) $(XDIST) $(PYTEST_ARGS) -m "not services" tests

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The container image the Kubernetes manifests run (Containerfile), tagged as they name it, built
# with podman from a Debian base made here (scripts/base-image.sh); about 2 minutes cold.
image:
	scripts/image.sh

# Its smoke test without a container runtime (podman image mount + chroot as uid 10001), about
# 10 s; CI runs it after `make test` (.ci/run), which it would push past 10 minutes.
image-test: bootstrap image
	scripts/image-test.sh

# Numbers and ratios, never asserted (docs/benchmarks.md): about 15 minutes on 2 cores.
bench: bootstrap services
	$(BIN)/python -m benchmarks.speed
	$(BIN)/python -m benchmarks.run_latency
	$(BIN)/python -m benchmarks.receiver_burst
	$(BIN)/python -m benchmarks.celery_scale
	$(BIN)/python -m benchmarks.dlq_replay
	$(BIN)/python -m benchmarks.faults
	$(BIN)/python -m benchmarks.alerting

clean:
	rm -rf .sandbox .pytest_cache .ruff_cache
