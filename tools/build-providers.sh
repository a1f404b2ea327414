#!/usr/bin/env bash
# Build the Pulumi resource provider plugins into the tool cache (see lib.sh):
#   pulumi-resource-kubernetes  from the Go module proxy (upstream provider module, unmodified)
#   pulumi-resource-vault       from tools/pulumi-vault-bridge/ (our own small bridged provider)
# Usage: tools/build-providers.sh [kubernetes] [vault]   (default: both)
source "$(dirname "$0")/lib.sh"
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"

# --- version pins -------------------------------------------------------------------------------
# pulumi-kubernetes 4.25.0: the Python SDK pulumi-kubernetes==4.25.0 (pinned in pyproject.toml)
# asks the engine for plugin 4.25.0. Its provider module is untagged; the pseudo-version below is
# the commit of tag v4.25.0 and is one the module proxy serves (the other tags' are not served).
K8S_VERSION=4.25.0
K8S_PROVIDER_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_PROVIDER_PSEUDO=v4.0.0-20260115033456-f47bc2d6f199
K8S_SDK_MOD=github.com/pulumi/pulumi-kubernetes/sdk/v4   # go.mod: replace sdk/v4 => ../sdk

# pulumi-vault 7.8.0: the Python SDK pulumi-vault==7.8.0 asks for plugin 7.8.0. It was chosen as the
# newest SDK that accepts pulumi==3.184.0 (7.9.0+ need >=3.231); it accepts >=3.165,<4, so the
# current pins (SDK 3.272, engine 3.276) keep it.
# The upstream provider module (pulumi-vault/provider/v7) is not served by the module proxy at any
# release, so tools/pulumi-vault-bridge/ is our own wrapper around pulumi-terraform-bridge and the
# Terraform provider; its type tokens are read from the 7.8.0 wheel and checked against the schema
# at build time. The only Terraform provider commit the proxy serves is the one pulumi-vault
# 7.9.0/7.10.0 bridge (newer than 7.8.0's; the resources vaultfleet uses are unchanged between
# them). The pins live in that directory's go.mod:
#   github.com/hashicorp/terraform-provider-vault v1.9.1-0.20260422134934-5e9fcd457a99
#   github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2
#     v2.0.0-20260318212141-5525259d096b   (Pulumi's fork, as pulumi-vault 7.10.0 uses)
VAULT_VERSION=7.8.0
VAULT_BRIDGE_SRC="$TOOLS_DIR/pulumi-vault-bridge"

build_kubernetes() {
  CURRENT_TOOL=pulumi-resource-kubernetes
  local tool=$CURRENT_TOOL ver=$K8S_VERSION
  if already_built "$tool" "$ver"; then
    link_built "$tool" "$ver"; log "$tool $ver already built"; return 0
  fi
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver" src="$VAULTFLEET_TOOLS/src/$tool-$ver"
  log "$tool $ver: downloading $K8S_PROVIDER_MOD@$K8S_PROVIDER_PSEUDO and $K8S_SDK_MOD@v$ver"
  # Mirror the upstream repo layout: provider/ and sdk/ side by side (replace => ../sdk).
  copy_module "$K8S_PROVIDER_MOD@$K8S_PROVIDER_PSEUDO" "$src/provider"
  copy_module "$K8S_SDK_MOD@v$ver" "$src/sdk"
  log "$tool $ver: generating the embedded schema (generate.go)"
  # The embedded schema-embed.json / terraform-mapping-embed.json are gitignored upstream, so
  # absent from the module zip; generate.go derives them from the committed schema.json.
  ( cd "$src/provider/cmd/pulumi-resource-kubernetes" && VERSION=$ver go_verified run generate.go ) \
    || die "generate.go failed"
  log "$tool $ver: go build (several minutes on 2 cores)"
  mkdir -p "$out/bin"
  ( cd "$src/provider" && go_verified build -trimpath \
      -ldflags "-s -w -X $K8S_PROVIDER_MOD/pkg/version.Version=$ver" \
      -o "$out/bin/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes ) \
    || die "go build failed"
  mark_built "$tool" "$ver"
  rm -rf "$src"
  log "$tool $ver built in $((SECONDS - t0))s"
}

build_vault() {
  CURRENT_TOOL=pulumi-resource-vault
  local tool=$CURRENT_TOOL ver=$VAULT_VERSION
  local t0=$SECONDS out="$VAULTFLEET_TOOLS/$tool-$ver" src="$VAULTFLEET_TOOLS/src/$tool-$ver"
  # The plugin is built from our own source too: a change to it means a rebuild.
  local srchash; srchash=$(cd "$VAULT_BRIDGE_SRC" && find . -type f -not -name '*.orig' | LC_ALL=C sort \
    | xargs sha256sum | sha256sum | cut -c1-16)
  if already_built "$tool" "$ver" && [ "$(cat "$out/.source-hash" 2>/dev/null)" = "$srchash" ]; then
    link_built "$tool" "$ver"; log "$tool $ver already built"; return 0
  fi
  rm -rf "$out"
  rm -rf "$src"; mkdir -p "$src"
  cp -r "$VAULT_BRIDGE_SRC/." "$src/mod"
  # Its go.sum was written while the toolchain did not use the checksum database (GOSUMDB=off): the
  # build starts without it and go adds back each line it needs after sum.golang.org agrees (lib.sh).
  rm -f "$src/mod/go.sum"
  local cmd="$src/mod/cmd/pulumi-resource-vault" ldflags="-s -w -X main.version=$ver"

  log "$tool $ver: reading the type tokens of the Python SDK (pip download pulumi-vault==$ver)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$src/wheel" "pulumi-vault==$ver" \
    || die "pip download pulumi-vault==$ver failed"
  python3 -m zipfile -e "$src"/wheel/pulumi_vault-*.whl "$src/wheel/x" || die "unzip wheel failed"
  python3 "$src/mod/sdk_tokens.py" "$src/wheel/x/pulumi_vault" "$src/mod/provider/sdk-tokens.json" \
    || die "sdk_tokens.py failed"

  log "$tool $ver: go build pulumi-tfgen-vault (bridge + terraform-provider-vault: 10+ minutes on 2 cores)"
  ( cd "$src/mod" && go_verified build -trimpath -ldflags "$ldflags" -o "$src/bin/pulumi-tfgen-vault" \
      ./cmd/pulumi-tfgen-vault ) || die "go build pulumi-tfgen-vault failed"

  log "$tool $ver: generating the Pulumi schema (pulumi-tfgen-vault schema)"
  ( cd "$src" && ./bin/pulumi-tfgen-vault schema --out "$src/schema" --skip-docs --skip-examples ) \
    > "$src/tfgen.log" 2>&1 || { tail -n 30 "$src/tfgen.log" >&2; die "tfgen failed"; }
  grep '^tfgen:' "$src/tfgen.log" >&2 || true
  # Every resource class of the SDK must have its token, and the properties it reads, in the schema.
  python3 "$src/mod/check_schema.py" "$src/schema/schema.json" "$src/wheel/x/pulumi_vault" >&2 \
    || die "the schema lacks resources of the pulumi-vault==$ver SDK (see check_schema above)"
  # The schema tfgen writes has no version; the embedded one carries the plugin version.
  python3 - "$src/schema/schema.json" "$cmd/schema-embed.json" "$ver" <<'PY' || die "schema version stamp failed"
import json, sys
spec = json.load(open(sys.argv[1]))
spec["version"] = sys.argv[3]
json.dump(spec, open(sys.argv[2], "w"), separators=(",", ":"))
PY
  cp "$src/schema/bridge-metadata.json" "$cmd/bridge-metadata.json" || die "no bridge-metadata.json from tfgen"

  log "$tool $ver: go build pulumi-resource-vault (relink with the embedded schema)"
  mkdir -p "$out/bin"
  ( cd "$src/mod" && go_verified build -trimpath -ldflags "$ldflags" -o "$out/bin/pulumi-resource-vault" \
      ./cmd/pulumi-resource-vault ) || die "go build pulumi-resource-vault failed"
  # Smoke check: the plugin starts and maps the tokens the project uses.
  local info; info=$("$out/bin/pulumi-resource-vault" -get-provider-info) || die "plugin does not start"
  for tok in vault:index/policy:Policy vault:index/authBackend:AuthBackend \
             vault:kubernetes/authBackendRole:AuthBackendRole; do
    grep -q "\"$tok\"" <<<"$info" || die "plugin does not map $tok"
  done
  echo "$srchash" > "$out/.source-hash"
  mark_built "$tool" "$ver"
  rm -rf "$src"
  log "$tool $ver built in $((SECONDS - t0))s"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(kubernetes vault)
for t in "${targets[@]}"; do
  case "$t" in
    kubernetes) build_kubernetes ;;
    vault) build_vault ;;
    *) CURRENT_TOOL=providers die "unknown target $t (kubernetes|vault)" ;;
  esac
done
