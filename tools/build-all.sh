#!/usr/bin/env bash
# Build (or reuse from the cache) every tool vaultfleet's lab and tests need. Idempotent: a tool
# already in $VAULTFLEET_TOOLS is skipped, so a warm run takes seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
start=$(date +%s)
for step in build-pulumi build-providers build-vault-server build-kube; do
  t0=$(date +%s)
  if ! bash "$here/$step.sh"; then
    echo "[tools] FAILED: $step.sh (see the messages above)" >&2
    exit 1
  fi
  echo "[tools] $step done in $(( $(date +%s) - t0 ))s" >&2
done
echo "[tools] all tools ready in $(( $(date +%s) - start ))s: ${VAULTFLEET_TOOLS:-$HOME/.cache/vaultfleet/tools}/bin" >&2
