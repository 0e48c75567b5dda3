#!/usr/bin/env bash
# Install everything the project needs on a fresh machine of this kind (Debian, Python 3.11+):
# Debian's prometheus + prometheus-alertmanager, a virtualenv with the package and its dev
# and lab extras. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
log() { printf '[bootstrap] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # scripts/offline.sh brings up loopback with it
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the record's phone-width test
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  # --no-install-recommends: no node exporter and friends; policy-rc.d keeps services from starting
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# ganache (two local Ethereum nodes for the blockchain-rpc-down tests) from the npm registry,
# into .tools/ (not global): tests and the sandbox find it at .tools/node_modules/.bin/ganache.
GANACHE_VERSION=7.9.2
if [ ! -x .tools/node_modules/.bin/ganache ] || ! grep -q "\"version\": \"$GANACHE_VERSION\"" .tools/node_modules/ganache/package.json 2>/dev/null; then
  command -v npm >/dev/null 2>&1 || { log "need npm (Node.js) to install ganache"; exit 1; }
  log "installing ganache $GANACHE_VERSION from the npm registry into .tools/"
  mkdir -p .tools
  npm install --no-audit --no-fund --loglevel=error --prefix .tools "ganache@$GANACHE_VERSION" >/dev/null \
    || { log "npm install ganache failed"; exit 1; }
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  log "need Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))"; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
log "installing the package with its dev and lab extras into $VENV"
pip_install() {
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" >"$VENV/pip.log" 2>&1; then
    grep -v '^WARNING: Location' "$VENV/pip.log" | tail -30 >&2; log "pip install $* failed"; exit 1
  fi
}
# uv (from PyPI) resolves and installs in parallel: about 20 s here where pip takes two minutes.
# pip stays the fallback, so a registry or platform uv cannot serve still gets a working venv.
if pip_install uv && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e '.[dev,lab]' >"$VENV/uv.log" 2>&1; then
  log "installed with uv"
else
  [ -s "$VENV/uv.log" ] && { tail -15 "$VENV/uv.log" >&2; log "uv failed; installing with pip instead"; }
  pip_install --upgrade pip
  pip_install -e '.[dev,lab]'
fi
"$VENV/bin/python" -c 'import runbook_lib, papermill, nbconvert, kubernetes, psycopg, httpx, pandas, nbval, fastapi, pika' \
  || { log "the virtualenv is incomplete"; exit 1; }
log "ok: $("$VENV/bin/python" -V), prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), alertmanager $(prometheus-alertmanager --version 2>&1 | head -1 | awk '{print $3}')"
