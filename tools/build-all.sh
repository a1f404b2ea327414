#!/usr/bin/env bash
# Build (or reuse from the cache) every tool vaultfleet's lab and tests need. Idempotent: a tool
# already in $VAULTFLEET_TOOLS is skipped, so a warm run takes seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
start=$(date +%s)
# Two lab servers: OpenBao (the default) and HashiCorp Vault 1.14.1, which `make test` runs the lab
# tests against as well (cold build about 6 minutes on 2 cores once the steps before it have filled
# Go's build cache).
# fetch-crds: the external-secrets and vault-secrets-operator CRDs the consumer lab tests install;
# build-controllers: those projects' controllers and the Vault agent injector, which the lab tests
# run against a lab cluster (about 5 minutes cold on 2 cores once Go's build cache is warm).
for step in build-pulumi build-providers "build-vault-server openbao" "build-vault-server vault" build-kube fetch-crds build-controllers; do
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
