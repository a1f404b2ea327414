#!/usr/bin/env bash
# Build a Vault-compatible server into the tool cache (see lib.sh), without the web UI:
#   openbao  -> bao    OpenBao (MPL), the default server of the tests
#   vault    -> vault  HashiCorp Vault 1.14.1 (MPL), the second server `make test` tests against
# Both have the dev server (`server -dev`), the kubernetes auth method, kv-v2, the `agent`
# subcommand and the built-in PostgreSQL database plugin.
# Usage: tools/build-vault-server.sh [openbao] [vault]   (default: both)
source "$(dirname "$0")/lib.sh"

# --- version pins -------------------------------------------------------------------------------
# OpenBao 2.4.0. The root module github.com/openbao/openbao has no /v2 suffix and no v0/v1 tag, so
# it is only reachable by pseudo-version; of every v2.x release tag and release branch head, only
# the commit of tag v2.4.0 is served by the module proxy (the others answer 403 "not available").
OPENBAO_VERSION=2.4.0
OPENBAO_MOD=github.com/openbao/openbao
OPENBAO_COMMIT=f9407a27fbee45f62ba521bba2bf1e2360c61031
OPENBAO_PSEUDO=v0.0.0-20250828202315-f9407a27fbee
OPENBAO_DATE=2025-08-28T20:23:15Z
# Nested modules that go.mod replaces with local directories, at tags the proxy serves:
# api/v2 and sdk/v2 at v2.4.0 (same code as the v2.4.0 tree; api differs only in go.mod bumps);
# api/auth/*/v2 have no v2.4.0 tag: v2.5.0 has the same code as the v2.4.0 tree (only used by tests).
OPENBAO_NESTED=(
  "api=$OPENBAO_MOD/api/v2@v2.4.0"
  "sdk=$OPENBAO_MOD/sdk/v2@v2.4.0"
  "api/auth/approle=$OPENBAO_MOD/api/auth/approle/v2@v2.5.0"
  "api/auth/kubernetes=$OPENBAO_MOD/api/auth/kubernetes/v2@v2.5.0"
  "api/auth/userpass=$OPENBAO_MOD/api/auth/userpass/v2@v2.5.0"
)

# HashiCorp Vault 1.14.1 (MPL; 1.14.8 is the last MPL release). Its go.mod replaces the nested
# api/sdk modules with ./api and ./sdk, and the 1.14.x release branch's sdk/ matches no sdk tag:
# the build needs sdk/ at the release commit itself. The proxy serves that for 1.14.1 (commit from
# its .info Origin); 1.14.0's is 403, and for 1.14.2+ the proxy's .info gives no commit hash.
# With tagged sdks the later 1.14.x tags do not work:
#   1.14.8 + sdk v0.9.2  -> "undefined: physical.FencingHABackend", "logical.CtxKeyRequestRole"
#   1.14.8 + sdk v0.11.0 -> "*pluginEventBus does not implement logical.EventSender"
#   1.14.2 + sdk v0.9.2  -> builds, but `server -dev` panics: "Pattern managed-keys/... defines a
#                           CreateOperation but no ExistenceCheck" (a check added on main only)
#   1.14.2 + sdk of its go.mod (v0.9.2-0.20230530190758-08ee474850e0) -> "undefined:
#                           certutil.ParseBasicConstraintExtension", "dstP.WrapKey undefined"
# version.Version is the literal "1.14.1" in this release; the commit is the tag's (proxy .info).
VAULT_VERSION=1.14.1
VAULT_MOD=github.com/hashicorp/vault
VAULT_COMMIT=bf23fe8636b04d554c0fa35a756c75c2f59026c0
VAULT_DATE=2023-07-21T17:15:14Z
# Nested modules replaced with local directories: sdk at the release commit, the others at the
# versions its go.mod requires (api v1.9.2; no api pseudo-version of that commit is served).
VAULT_NESTED=(
  "api=$VAULT_MOD/api@v1.9.2"
  "sdk=$VAULT_MOD/sdk@v0.9.2-0.20230721171514-bf23fe8636b0"
  "api/auth/approle=$VAULT_MOD/api/auth/approle@v0.1.0"
  "api/auth/kubernetes=$VAULT_MOD/api/auth/kubernetes@v0.4.0"
  "api/auth/userpass=$VAULT_MOD/api/auth/userpass@v0.1.0"
)

build_openbao() {
  CURRENT_TOOL=openbao
  local tool=openbao ver=$OPENBAO_VERSION
  if already_built "$tool" "$ver"; then
    link_built "$tool" "$ver"; log "$tool $ver already built"; return 0
  fi
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver" src="$VAULTFLEET_TOOLS/src/$tool-$ver"
  stage_tree "$src" "$OPENBAO_MOD@$OPENBAO_PSEUDO" "${OPENBAO_NESTED[@]}"
  # Later OpenBao releases replace github.com/boltdb/bolt with ./helper/stubbolt; drop it if present.
  if grep -q '^replace github.com/boltdb/bolt' "$src/go.mod"; then
    (cd "$src" && go mod edit -dropreplace github.com/boltdb/bolt) || die "go mod edit failed"
  fi
  log "$tool $ver: go build ./ (no UI; about 10 minutes on 2 cores)"
  mkdir -p "$out/bin"
  ( cd "$src" && go_verified build -trimpath -o "$out/bin/bao" -ldflags "-s -w \
      -X $OPENBAO_MOD/version.fullVersion=$ver \
      -X $OPENBAO_MOD/version.GitCommit=$OPENBAO_COMMIT \
      -X $OPENBAO_MOD/version.BuildDate=$OPENBAO_DATE" . ) || die "go build failed"
  [[ "$("$out/bin/bao" version)" == "OpenBao v$ver "* ]] || die "bao version does not print v$ver"
  mark_built "$tool" "$ver"
  rm -rf "$src"
  log "$tool $ver built in $((SECONDS - t0))s"
}

build_vault() {
  CURRENT_TOOL=vault
  local tool=vault ver=$VAULT_VERSION
  if already_built "$tool" "$ver"; then
    link_built "$tool" "$ver"; log "$tool $ver already built"; return 0
  fi
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver" src="$VAULTFLEET_TOOLS/src/$tool-$ver"
  stage_tree "$src" "$VAULT_MOD@v$ver" "${VAULT_NESTED[@]}"
  log "$tool $ver: go build ./ (no UI; about 6 minutes on 2 cores after the other tools)"
  mkdir -p "$out/bin"
  ( cd "$src" && go_verified build -trimpath -o "$out/bin/vault" -ldflags "-s -w \
      -X $VAULT_MOD/version.GitCommit=$VAULT_COMMIT \
      -X $VAULT_MOD/version.BuildDate=$VAULT_DATE" . ) || die "go build failed"
  [[ "$("$out/bin/vault" version)" == "Vault v$ver "* ]] || die "vault version does not print v$ver"
  mark_built "$tool" "$ver"
  rm -rf "$src"
  log "$tool $ver built in $((SECONDS - t0))s"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(openbao vault)
for t in "${targets[@]}"; do
  case "$t" in
    openbao) build_openbao ;;
    vault) build_vault ;;
    *) CURRENT_TOOL=vault-server die "unknown target $t (openbao|vault)" ;;
  esac
done
