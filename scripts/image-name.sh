#!/usr/bin/env bash
# The image reference the Kubernetes manifests run: registry.example.com/omnihub/runbooks:<version
# in pyproject.toml>. REGISTRY=... names another registry (then set the manifests' image to it).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
echo "${REGISTRY:-registry.example.com/omnihub}/runbooks:${version}"
