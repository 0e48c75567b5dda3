#!/usr/bin/env bash
# make image-test: smoke-test the built image without a container runtime (`podman run` cannot
# run in this VM: crun's setrlimit is refused). The image's root filesystem is mounted read-only
# (`podman image mount`), its scratch and state directories get fresh host directories, and each
# check runs in it with `chroot --userspec=10001:10001` and the image's own environment:
#   runbook --help and runbook list as uid 10001; runbook worker --help; runbook serve answering
#   /healthz; a runbook run against a loopback Prometheus (kernels, pandas, matplotlib inside the
#   image) whose record, written by uid 10001, verifies with `runbook verify` outside the image;
#   nothing outside /tmp, /var/tmp and /var/lib/runbook writable by uid 10001.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-$(scripts/image-name.sh)}
HOST_RUNBOOK=${HOST_RUNBOOK:-.venv/bin/runbook}
HOST_PYTHON=${HOST_PYTHON:-.venv/bin/python}
log() { printf '[image-test] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (it mounts the image and chroots into it)"
podman image exists "$IMAGE" || fail "no image $IMAGE: run make image first"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /var/tmp/omnihub-image-test.XXXXXX)
MNT=$(podman image mount "$IMAGE")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for m in var/lib/runbook tmp dev proc; do umount -R "$MNT/$m" 2>/dev/null || true; done
  podman image unmount "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. what uid 10001 may write, read off the image itself (its permissions, not the read-only mount)
writable=$(cd "$MNT" && find . -xdev -path ./dev -prune -o ! -type l \( -perm -0002 -o -user 10001 -o \( -group 10001 -perm -0020 \) \) -print \
  | sed 's|^\.||' | grep -Ev '^/(tmp|var/tmp|var/lib/runbook(/journal|/archive)?)$' || true)
[ -z "$writable" ] || fail "writable by uid 10001 outside the state and scratch directories: $writable"
log "PASS nothing outside /tmp, /var/tmp, /var/lib/runbook is writable by uid 10001"

mkdir -p "$WORK/tmp" "$WORK/state/journal" "$WORK/state/archive" "$WORK/prometheus"
chmod 1777 "$WORK/tmp"
chown -R 10001:10001 "$WORK/state"
mount -t proc proc "$MNT/proc"
mount --rbind /dev "$MNT/dev"
mount --bind "$WORK/tmp" "$MNT/tmp"
mount --bind "$WORK/state" "$MNT/var/lib/runbook"
mapfile -t ENV < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
inside() { chroot --userspec=10001:10001 "$MNT" /usr/bin/env -i "${ENV[@]}" "$@"; }

t0=$(date +%s)
inside runbook --help | grep -q "executable runbooks" || fail "runbook --help"
log "PASS runbook --help as uid $(inside id -u)"
inside runbook list | grep -q "high-error-rate" || fail "runbook list"
log "PASS runbook list ($(inside runbook list | wc -l) lines)"
inside runbook worker --help | grep -q "consum" || fail "runbook worker --help"
log "PASS runbook worker --help"

port=$(free_port)
inside runbook serve --host 127.0.0.1 --port "$port" --insecure-no-auth --workers 1 >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
  code=$(curl -s -o "$WORK/healthz" -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
  [ "$code" = 200 ] && break
  sleep 0.5
done
[ "$code" = 200 ] || { tail -20 "$WORK/serve.log" >&2; fail "runbook serve never answered /healthz 200 (last: $code)"; }
log "PASS runbook serve answers /healthz: $(cat "$WORK/healthz")"
kill "${PIDS[-1]}" && wait "${PIDS[-1]}" 2>/dev/null || true

# a loopback Prometheus (the host's, from Debian's package) holding the demo's incident (an
# error-rate spike, backfilled), for a real diagnosis inside the image
"$HOST_PYTHON" - "$WORK/prometheus" <<'PY'
import sys
from pathlib import Path
from runbook_lib.sandbox import incident, services
work = Path(sys.argv[1])
incident.write_file(incident.Scenario.default(), work / "incident.om")
services.backfill(work / "incident.om", work / "tsdb")
PY
prom_port=$(free_port)
printf 'global: {scrape_interval: 15s}\n' >"$WORK/prometheus/prometheus.yml"
prometheus --config.file="$WORK/prometheus/prometheus.yml" --storage.tsdb.path="$WORK/prometheus/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null && break; sleep 0.5; done
set +e
inside RUNBOOK_PROMETHEUS_URL="http://127.0.0.1:$prom_port" RUNBOOK_WARM_KERNELS=0 \
  runbook run high-error-rate --alert /opt/omnihub-runbooks/examples/alerts/high-error-rate.json --quiet >"$WORK/run.out" 2>"$WORK/run.err"
rc=$?
set -e
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { tail -20 "$WORK/run.err" >&2; fail "runbook run exited $rc"; }
record=$(dirname "$(sed "s|^/var/lib/runbook|$WORK/state|" "$WORK/run.out")")
[ -f "$record/record.json" ] || fail "no record at $record"
[ "$(stat -c %u "$record/record.json")" = 10001 ] || fail "the record is not owned by uid 10001"
python3 - "$record/record.json" <<'PY' || fail "the run inside the image measured nothing from Prometheus"
import json, sys
rec = json.load(open(sys.argv[1]))
prom = [f for f in rec["findings"] if "burn" in f["check"].lower() or "5xx" in f["check"].lower()]
assert prom and all(f["verdict"] != "unchecked" for f in prom), [(f["check"], f["verdict"], f["summary"][:80]) for f in prom]
assert any(o.get("data", {}).get("image/png") for c in json.load(open(sys.argv[1].replace("record.json", "notebook.ipynb")))["cells"] for o in c.get("outputs", [])), "no plot"
print(f"[image-test] record {rec['id']}: {rec['status']}, {len(rec['findings'])} findings, Prometheus checks: " + ", ".join(f"{f['check']}={f['verdict']}" for f in prom), file=sys.stderr)
PY
log "PASS a runbook ran inside the image against loopback Prometheus (kernels, pandas, matplotlib)"
RUNBOOK_ARCHIVE="$WORK/state/archive" "$HOST_RUNBOOK" verify >&2 || fail "runbook verify outside the image"
log "PASS the record written by uid 10001 verifies outside the image"
log "all checks passed in $(( $(date +%s) - t0 )) s; image $IMAGE: $(( $(podman image inspect --format '{{.Size}}' "$IMAGE") / 1000000 )) MB"
