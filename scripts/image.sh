#!/usr/bin/env bash
# make image: build the image the Kubernetes manifests run, tagged exactly as they name it
# (IMAGE:VERSION, the version from pyproject.toml), with podman (buildah underneath), here.
# BASE=... builds on another base (a registry's python:3.11-slim-like Debian bookworm image);
# by default the base is built from the Debian archive (scripts/base-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[image] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
IMAGE=${IMAGE:-$(scripts/image-name.sh)}
DEFAULT_BASE=localhost/omnihub/debian-bookworm-minbase:12
BASE=${BASE:-$DEFAULT_BASE}
missing=()
for tool in podman buildah debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}" >/dev/null
fi
start=$(date +%s)
if [ "$BASE" = "$DEFAULT_BASE" ]; then scripts/base-image.sh "$BASE"; fi
# The host's CA bundle goes in as a build secret (never into a layer): pip and uv in the build
# trust what the host trusts (a proxy's CA included).
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
log "building $IMAGE on $BASE"
podman build --isolation=chroot --layers --secret "id=ca_bundle,src=$CA" --build-arg "BASE=$BASE" \
  -t "$IMAGE" -f Containerfile . >.image-build.log 2>&1 || { tail -30 .image-build.log >&2; log "build failed (.image-build.log)"; exit 1; }
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $(( $(date +%s) - start )) s: $(( size / 1000000 )) MB; its biggest layers:"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | awk -F'\t' '$1 ~ / MB$/' | sort -rn | head -3 \
  | awk -F'\t' '{ printf "  %8s  %s\n", $1, substr($2, 1, 90) }' >&2
