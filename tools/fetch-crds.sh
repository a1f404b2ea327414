#!/usr/bin/env bash
# Fetch (or reuse from the cache) the CustomResourceDefinitions of the secret consumers that
# `vaultfleet consumers` writes objects for, so the lab tests can install the real CRDs into a lab
# kube-apiserver and have it validate the generated objects. Third-party YAML: fetched at build
# time from the projects' own Go modules, never committed to this repository.
#   $VAULTFLEET_TOOLS/crds-<project>-<version>/*.yaml     the CRDs as the module ships them
#   $VAULTFLEET_TOOLS/crds/<project> -> ../crds-<project>-<version>   what the tests read
source "$(dirname "$0")/lib.sh"

# --- version pins -------------------------------------------------------------------------------
# external-secrets 1.3.2: the only version of the module the proxy serves (`go list -m -versions`).
# It serves external-secrets.io/v1 only (v1beta1 is in the CRDs with served: false since 0.17),
# which is the apiVersion vaultfleet/consumers.py writes.
ESO_VERSION=1.3.2
ESO_MOD=github.com/external-secrets/external-secrets
ESO_CRD_DIR=config/crds/bases
# vault-secrets-operator 0.10.0: the proxy answers 403 for its version list and for 0.9.1, 1.0.0,
# 1.0.1 and 1.2.0; 0.10.0 is served. Its CRDs serve secrets.hashicorp.com/v1beta1.
VSO_VERSION=0.10.0
VSO_MOD=github.com/hashicorp/vault-secrets-operator
VSO_CRD_DIR=config/crd/bases

# fetch_crds PROJECT VERSION MODULE DIR: copy MODULE@vVERSION's DIR/*.yaml into the cache.
fetch_crds() {
  CURRENT_TOOL="crds-$1"
  local project=$1 ver=$2 mod=$3 sub=$4
  local out="$VAULTFLEET_TOOLS/crds-$project-$ver"
  mkdir -p "$VAULTFLEET_TOOLS/crds"
  if already_built "crds-$project" "$ver"; then
    ln -sfn "../crds-$project-$ver" "$VAULTFLEET_TOOLS/crds/$project"
    log "crds-$project $ver already fetched"; return 0
  fi
  log "crds-$project $ver: go mod download $mod@v$ver"
  local src; src=$(module_dir "$mod@v$ver")
  [ -d "$src/$sub" ] || die "$mod@v$ver has no $sub/"
  rm -rf "$out"; mkdir -p "$out"
  local f n=0
  for f in "$src/$sub"/*.yaml; do
    # kustomization.yaml is not a CRD; everything else in the directory is one CRD per file.
    grep -q '^kind: CustomResourceDefinition' "$f" || continue
    cp "$f" "$out/"; n=$((n + 1))
  done
  chmod -R u+w "$out"  # the module cache is read-only; the copies need not be
  [ "$n" -gt 0 ] || die "no CustomResourceDefinition in $mod@v$ver/$sub"
  date -u +%FT%TZ > "$out/.complete"
  ln -sfn "../crds-$project-$ver" "$VAULTFLEET_TOOLS/crds/$project"
  log "crds-$project $ver: $n CRDs in $out"
}

fetch_crds external-secrets "$ESO_VERSION" "$ESO_MOD" "$ESO_CRD_DIR"
fetch_crds vault-secrets-operator "$VSO_VERSION" "$VSO_MOD" "$VSO_CRD_DIR"
