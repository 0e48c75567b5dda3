#!/usr/bin/env bash
# The default base of the Containerfile, built from the Debian archive alone (no image registry
# is needed): debootstrap --variant=minbase bookworm, then `podman import` of that root filesystem.
# Usage: scripts/base-image.sh [TAG]   (default localhost/omnihub/debian-bookworm-minbase:12)
set -euo pipefail
TAG=${1:-localhost/omnihub/debian-bookworm-minbase:12}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[base-image] %s\n' "$*" >&2; }
if podman image exists "$TAG"; then log "$TAG exists"; exit 0; fi
ROOT=$(mktemp -d /var/tmp/omnihub-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
log "debootstrap --variant=minbase bookworm from $MIRROR (about 30 s)"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
  "$MIRROR" "$MIRROR" >"$ROOT/etc/apt/sources.list"
log "podman import -> $TAG"
tar -C "$ROOT" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
log "done: $(podman image inspect --format '{{.Size}}' "$TAG") bytes"
