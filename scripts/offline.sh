#!/usr/bin/env bash
# Run a command in a network namespace of its own where only loopback exists and nothing
# listens: proves the "pure" tests need no service (PostgreSQL, Redis, Prometheus, ...).
# Needs root (or unprivileged user namespaces); where neither is possible, the command runs
# in the normal namespace with a loud warning, so the tests still run.
set -uo pipefail
if unshare -n true 2>/dev/null; then
  exec unshare -n -- sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
fi
echo "[offline] WARNING: cannot create a network namespace here; running without isolation: $*" >&2
exec "$@"
