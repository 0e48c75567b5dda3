#!/usr/bin/env bash
# Run a command in a network namespace of its own where only loopback exists and nothing
# listens: proves the "pure" tests need no service (PostgreSQL, Redis, Prometheus, ...).
# Needs root (or unprivileged user namespaces) and `ip` (iproute2, installed by
# scripts/bootstrap.sh) to bring loopback up. Where either is missing, the command runs in the
# normal namespace with a loud warning, so the tests still run.
set -uo pipefail
if ! command -v ip >/dev/null 2>&1; then
  echo "[offline] WARNING: no 'ip' command (iproute2); running without network isolation" >&2
  exec "$@"
fi
for flags in -n -rn; do
  if unshare $flags sh -c 'ip link set lo up' 2>/dev/null; then
    exec unshare $flags -- sh -c 'ip link set lo up || { echo "[offline] cannot bring loopback up" >&2; exit 97; }; exec "$@"' offline "$@"
  fi
done
echo "[offline] WARNING: cannot create a network namespace with loopback here; running without network isolation" >&2
exec "$@"
