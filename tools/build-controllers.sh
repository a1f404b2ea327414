#!/usr/bin/env bash
# Build the Kubernetes controllers that consume Vault secrets into the tool cache (see lib.sh). The lab
# tests run them as local processes against a lab kube-apiserver (kubeconfig, no cluster):
#   external-secrets-<v>/bin/external-secrets             External Secrets Operator (controller)
#   vault-secrets-operator-<v>/bin/vault-secrets-operator  HashiCorp Vault Secrets Operator
#   vault-k8s-<v>/bin/vault-k8s                            Vault agent injector (`vault-k8s agent-inject`)
# Each is the upstream module from the Go module proxy, unmodified, built from its own go.mod/go.sum.
# Usage: tools/build-controllers.sh [external-secrets] [vault-secrets-operator] [vault-k8s]  (default: all)
#
# Outside a cluster (ports: pick free 127.0.0.1 ones; metrics address "0" turns metrics off):
#   KUBECONFIG=K external-secrets --metrics-addr=127.0.0.1:P
#       cobra flags: no --kubeconfig; leader election is off by default; no health port; the root
#       command runs no webhook (`webhook` and `certcontroller` are other subcommands).
#   OPERATOR_NAMESPACE=NS vault-secrets-operator --kubeconfig=K --leader-elect=false \
#       --metrics-bind-address=127.0.0.1:P1 --health-probe-bind-address=127.0.0.1:P2
#       no webhook is registered; without OPERATOR_NAMESPACE the operator namespace is "default".
#   vault-k8s agent-inject -listen=127.0.0.1:P -tls-cert-file=CRT -tls-key-file=KEY \
#       -vault-address=URL -vault-image=IMAGE     (or AGENT_INJECT_LISTEN, _TLS_CERT_FILE,
#       _TLS_KEY_FILE, _VAULT_ADDR, _VAULT_IMAGE; the environment wins over flags)
#       It loads only the in-cluster config (rest.InClusterConfig; no kubeconfig support upstream):
#       KUBERNETES_SERVICE_HOST/PORT plus a bearer token and CA at the fixed paths
#       /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}.
source "$(dirname "$0")/lib.sh"

# Module proxy only: without ",direct" a version the proxy refuses stops the build instead of
# falling back to a git clone.
export GOPROXY=https://proxy.golang.org

# --- version pins -------------------------------------------------------------------------------
# external-secrets 0.16.2, not 1.3.2 (the version of the CRDs fetch-crds.sh installs). The proxy
# serves two versions of the module, 0.16.2 and 1.3.2 (`go list -m -versions`). 1.3.2 cannot be
# built from it: its go.mod replaces 56 nested modules (apis, runtime, providers/v1/*,
# generators/v1/*) with ./directories, which are not in the root module's zip, and the nested
# modules are untagged; the proxy answers 403 for each of them at the v1.3.2 commit
# (v0.0.0-20260203074332-a2ec42276c5e) and at every pseudo-version ESO's go.mod files have required;
# the one nested module version it serves is apis@v0.0.0-20260213133823-31b0c7c37342. A build
# restricted to the Vault provider (`-tags vault`, which 1.x supports upstream) does not avoid
# this: it still needs apis, runtime, providers/v1/{vault,kubernetes} and all 15 generators.
# 0.16.2 is one module (the Vault provider included; no build tags), its whole dependency closure
# is served, and its controllers use only API versions the 1.3.2 CRDs serve: external-secrets.io/v1
# (ExternalSecret, SecretStore, ClusterSecretStore, ClusterExternalSecret) and v1alpha1 (PushSecret,
# ClusterPushSecret, GeneratorState).
ESO_VERSION=0.16.2
ESO_MOD=github.com/external-secrets/external-secrets
# For a 1.x version: the pseudo-version of its commit at which to stage every nested module its
# go.mod replaces with a ./directory (build_module); 0.16.2 has none.
ESO_NESTED_VERSION=
# Providers compiled in by 1.x (pkg/register/*.go: `//go:build <provider> || all_providers`, the
# upstream Makefile's default PROVIDER=all_providers; `vault` alone would do). 0.16.2 has no such tags.
ESO_TAGS=all_providers

# vault-secrets-operator 0.10.0: the CRDs fetch-crds.sh installs are 0.10.0's. The proxy answers 403
# for the module's version list and for 0.9.1, 1.0.0, 1.0.1 and 1.2.0. No nested modules.
# Commit and time from the proxy's .info, for the version the binary reports (`-version`).
VSO_VERSION=0.10.0
VSO_MOD=github.com/hashicorp/vault-secrets-operator
VSO_COMMIT=aebf0c1c59485059a9ea6c58340fd406afe4cbef
VSO_DATE=2025-03-04T22:20:35Z

# vault-k8s 1.6.2: the newest version the proxy serves. It answers 403 for the version list and for
# every later tag (1.7.0 to 1.7.6, also by commit hash); 1.6.2 and its whole dependency closure are
# served. Its default agent image is hashicorp/vault:1.18.5 (-vault-image overrides it).
VAULT_K8S_VERSION=1.6.2
VAULT_K8S_MOD=github.com/hashicorp/vault-k8s

# local_replaces GO_MOD: "DIR=MODULE" for each `replace MODULE => ./DIR` in GO_MOD.
local_replaces() {
  go mod edit -json "$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    new = r["New"]
    if new["Path"].startswith("./") and "Version" not in new:
        print(new["Path"][2:] + "=" + r["Old"]["Path"])'
}

# build_module TOOL VERSION MODULE@VERSION BINARY LDFLAGS [GO BUILD FLAGS...]: stage the module in
# src/ (with the nested modules its go.mod replaces with ./directories, at $NESTED_VERSION), build
# its main package (at the module root) into TOOL-VERSION.partial/bin/BINARY.
build_module() {
  local tool=$1 ver=$2 modver=$3 bin=$4 ldflags=$5; shift 5
  local src="$VAULTFLEET_TOOLS/src/$tool-$ver" out="$VAULTFLEET_TOOLS/$tool-$ver"
  # Build into $out.partial and rename at the end (finish): a failed build leaves no half-filled
  # $out, and a controller already running from $out keeps working during a rebuild.
  rm -rf "$src" "$out.partial"; mkdir -p "$out.partial/bin"
  local root replaces nested=() spec
  root=$(module_dir "$modver") || exit 1
  replaces=$(local_replaces "$root/go.mod") || die "cannot read $root/go.mod"
  for spec in $replaces; do
    [ -n "${NESTED_VERSION:-}" ] || die "$modver replaces ${spec#*=} with ./${spec%%=*}, which" \
      "its zip lacks: pin the pseudo-version to stage its nested modules at"
    nested+=("${spec%%=*}=${spec#*=}@$NESTED_VERSION")
  done
  stage_tree "$src" "$modver" "${nested[@]}"
  log "$tool $ver: go build -o $bin${*:+ $*} ."
  local start=$SECONDS
  ( cd "$src" && go_verified build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial/bin/$bin" "$@" . ) \
    || die "go build failed"
  log "$tool $ver: compiled in $((SECONDS - start))s, $(du -m "$out.partial/bin/$bin" | cut -f1) MB"
}

# reuse_built TOOL VERSION: true (binaries linked) when the cache holds a finished build.
reuse_built() {
  already_built "$1" "$2" || return 1
  link_built "$1" "$2"; log "$1 $2 already built"
}

# finish TOOL VERSION: move the checked build into place, stamp and link it, drop the sources.
finish() {
  local out="$VAULTFLEET_TOOLS/$1-$2"
  rm -rf "$out"; mv "$out.partial" "$out"
  mark_built "$1" "$2"
  rm -rf "$VAULTFLEET_TOOLS/src/$1-$2"
}

build_external_secrets() {
  CURRENT_TOOL=external-secrets
  local tool=$CURRENT_TOOL ver=$ESO_VERSION
  reuse_built "$tool" "$ver" && return 0
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver.partial"
  # Every provider and its cloud SDK: the largest of the three (about 150 MB).
  NESTED_VERSION=$ESO_NESTED_VERSION \
    build_module "$tool" "$ver" "$ESO_MOD@v$ver" external-secrets "" -tags "$ESO_TAGS"
  local help; help=$("$out/bin/external-secrets" --help) || die "external-secrets --help failed"
  [[ "$help" == *--metrics-addr* ]] || die "external-secrets --help does not list --metrics-addr"
  finish "$tool" "$ver"
  log "$tool $ver built in $((SECONDS - t0))s"
}

build_vault_secrets_operator() {
  CURRENT_TOOL=vault-secrets-operator
  local tool=$CURRENT_TOOL ver=$VSO_VERSION
  reuse_built "$tool" "$ver" && return 0
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver.partial"
  # What upstream's scripts/ldflags-version.sh sets: `-version` prints it, and the
  # vso_build_info metric carries it.
  local pkg=$VSO_MOD/internal/version
  local ldflags="-X $pkg.Major=${ver%%.*} -X $pkg.Minor=$(cut -d. -f2 <<< "$ver") \
    -X $pkg.GitVersion=v$ver -X $pkg.GitCommit=$VSO_COMMIT -X $pkg.GitTreeState=clean \
    -X $pkg.BuildDate=$VSO_DATE -X $pkg.GoVersion=$(go env GOVERSION) -X $pkg.Compiler=gc \
    -X $pkg.Platform=$(go env GOOS)/$(go env GOARCH)"
  NESTED_VERSION= build_module "$tool" "$ver" "$VSO_MOD@v$ver" vault-secrets-operator "$ldflags"
  local info; info=$("$out/bin/vault-secrets-operator" -version -output json) || die "-version failed"
  [[ "$info" == *"\"gitVersion\": \"v$ver\""* ]] || die "vault-secrets-operator -version does not report v$ver"
  finish "$tool" "$ver"
  log "$tool $ver built in $((SECONDS - t0))s"
}

build_vault_k8s() {
  CURRENT_TOOL=vault-k8s
  local tool=$CURRENT_TOOL ver=$VAULT_K8S_VERSION
  reuse_built "$tool" "$ver" && return 0
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver.partial"
  # The Makefile's LDFLAGS: `vault-k8s version` and the injector's User-Agent report it.
  NESTED_VERSION= build_module "$tool" "$ver" "$VAULT_K8S_MOD@v$ver" vault-k8s \
    "-X $VAULT_K8S_MOD/version.Version=v$ver"
  [ "$("$out/bin/vault-k8s" version)" = "vault-k8s v$ver" ] \
    || die "vault-k8s version does not print v$ver"
  finish "$tool" "$ver"
  log "$tool $ver built in $((SECONDS - t0))s"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(external-secrets vault-secrets-operator vault-k8s)
for t in "${targets[@]}"; do
  case "$t" in
    external-secrets) build_external_secrets ;;
    vault-secrets-operator) build_vault_secrets_operator ;;
    vault-k8s) build_vault_k8s ;;
    *) CURRENT_TOOL=controllers die "unknown target $t (external-secrets|vault-secrets-operator|vault-k8s)" ;;
  esac
done
