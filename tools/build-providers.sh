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

# pulumi-vault 7.10.0: the Python SDK pulumi-vault==7.10.0 asks for plugin 7.10.0. The upstream
# provider module (pulumi-vault/provider/v7) is not served by the module proxy at any release, so
# tools/pulumi-vault-bridge/ is our own wrapper that bridges the same Terraform provider commit
# that pulumi-vault 7.10.0 was built from; the pins live in that directory's go.mod:
#   github.com/hashicorp/terraform-provider-vault v1.9.1-0.20260422134934-5e9fcd457a99
#   github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2
#     v2.0.0-20260318212141-5525259d096b   (Pulumi's fork, as pulumi-vault 7.10.0 uses)
VAULT_VERSION=7.10.0
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
  ( cd "$src/provider/cmd/pulumi-resource-kubernetes" && VERSION=$ver go run generate.go ) \
    || die "generate.go failed"
  log "$tool $ver: go build (several minutes on 2 cores)"
  mkdir -p "$out/bin"
  ( cd "$src/provider" && go build -trimpath \
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
  if already_built "$tool" "$ver"; then
    link_built "$tool" "$ver"; log "$tool $ver already built"; return 0
  fi
  die "not implemented yet"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(kubernetes vault)
for t in "${targets[@]}"; do
  case "$t" in
    kubernetes) build_kubernetes ;;
    vault) build_vault ;;
    *) CURRENT_TOOL=providers die "unknown target $t (kubernetes|vault)" ;;
  esac
done
