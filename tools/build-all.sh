#!/usr/bin/env bash
# Build (or reuse from the cache) every tool vaultfleet's lab and tests need. Idempotent: a tool
# already in $VAULTFLEET_TOOLS is skipped, so a warm run takes seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
start=$(date +%s)
# OpenBao is the lab's server; HashiCorp Vault is optional (tools/build-vault-server.sh vault).
# fetch-crds: the external-secrets and vault-secrets-operator CRDs the consumer lab tests install.
for step in build-pulumi build-providers "build-vault-server openbao" build-kube fetch-crds; do
  t0=$(date +%s)
  read -r script args <<< "$step"
  # shellcheck disable=SC2086 # $args: zero or more words
  if ! bash "$here/$script.sh" $args; then
    echo "[tools] FAILED: $script.sh (see the messages above)" >&2
    exit 1
  fi
  echo "[tools] $script done in $(( $(date +%s) - t0 ))s" >&2
done
echo "[tools] all tools ready in $(( $(date +%s) - start ))s: ${VAULTFLEET_TOOLS:-$HOME/.cache/vaultfleet/tools}/bin" >&2
