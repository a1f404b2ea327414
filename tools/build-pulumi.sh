#!/usr/bin/env bash
# Build the Pulumi CLI and the Python language host into the tool cache (see lib.sh):
#   pulumi                          github.com/pulumi/pulumi/pkg/v3 ./cmd/pulumi (+ sdk/v3)
#   pulumi-language-python          github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
#   pulumi-language-python-exec     script from the sdk/v3 zip (python/cmd/), needed beside the host
#   pulumi-analyzer-policy-python,  scripts from the sdk/v3 zip (python/dist/), shipped beside the
#   pulumi-resource-pulumi-python   host in upstream releases too
# Usage: tools/build-pulumi.sh
source "$(dirname "$0")/lib.sh"
CURRENT_TOOL=pulumi

# --- version pins -------------------------------------------------------------------------------
# Pulumi 3.184.0: the newest release for which the module proxy serves all three modules at the
# release commit. Release tag v3.184.0 = sdk/v3.184.0 = commit a8f88047ab64 (2025-07-18 11:02:45Z).
# - The language host module is untagged: it is fetched at the pseudo-version of that commit. The
#   proxy serves no other release's (neither the v3.N.0 nor the pkg/v3.N.0 commit of any release
#   from 3.150 to 3.259 answers, except pkg/v3.163.0's).
# - pkg/v3 is taken at the same commit, not at its tag: tag pkg/v3.184.0 sits two commits later
#   (bb7f3aba) and needs an sdk/apitype field (PackageMetadata.Parameterization) that sdk/v3.184.0
#   lacks, so pkg v3.184.0 + sdk v3.184.0 does not compile. The pseudo-version's base is
#   pkg/v3.183.0, the newest pkg tag under that commit.
# The pip package `pulumi` (the Python SDK) is pinned to 3.229.0 in pyproject.toml, which says why.
PULUMI_VERSION=3.184.0
PKG_MOD=github.com/pulumi/pulumi/pkg/v3          # go.mod: replace sdk/v3 => ../sdk
PKG_PSEUDO=v3.183.1-0.20250718110245-a8f88047ab64
SDK_MOD=github.com/pulumi/pulumi/sdk/v3          # at tag sdk/v3.184.0
LANGHOST_MOD=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
LANGHOST_PSEUDO=v3.0.0-20250718110245-a8f88047ab64  # go.mod: pkg => ../../../../pkg, sdk => ../../..
# The Automation API runs `pulumi version` and rejects a non-semver answer; the language host
# reports the same variable.
VERSION_LDFLAG="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"

tool=pulumi ver=$PULUMI_VERSION
if already_built "$tool" "$ver"; then
  link_built "$tool" "$ver"; log "$tool $ver already built"; exit 0
fi

t0=$SECONDS
out="$VAULTFLEET_TOOLS/$tool-$ver"
src="$VAULTFLEET_TOOLS/src/$tool-$ver"
rm -rf "$out"

# Mirror the upstream repo layout, which both go.mod files' relative replaces expect:
#   sdk/   pkg/   sdk/python/cmd/pulumi-language-python/
log "$tool $ver: downloading $SDK_MOD@v$ver, $PKG_MOD@$PKG_PSEUDO, $LANGHOST_MOD@$LANGHOST_PSEUDO"
copy_module "$SDK_MOD@v$ver" "$src/sdk"
copy_module "$PKG_MOD@$PKG_PSEUDO" "$src/pkg"
copy_module "$LANGHOST_MOD@$LANGHOST_PSEUDO" "$src/sdk/python/cmd/pulumi-language-python"
mkdir -p "$out/bin"

log "$tool $ver: go build pulumi (the CLI; about 6 minutes on 2 cores with a cold build cache)"
t1=$SECONDS
( cd "$src/pkg" && go_verified build -trimpath -ldflags "-s -w $VERSION_LDFLAG" \
    -o "$out/bin/pulumi" ./cmd/pulumi ) || die "go build of ./cmd/pulumi failed"
log "$tool $ver: pulumi built in $((SECONDS - t1))s"

log "$tool $ver: go build pulumi-language-python"
t1=$SECONDS
( cd "$src/sdk/python/cmd/pulumi-language-python" && go_verified build -trimpath \
    -ldflags "-s -w $VERSION_LDFLAG" -o "$out/bin/pulumi-language-python" . ) \
  || die "go build of pulumi-language-python failed"
log "$tool $ver: pulumi-language-python built in $((SECONDS - t1))s"

# The language host runs pulumi-language-python-exec found beside its own binary.
log "$tool $ver: installing the Python helper scripts beside the language host"
install -m 0755 "$src/sdk/python/cmd/pulumi-language-python-exec" "$out/bin/" \
  || die "pulumi-language-python-exec missing from the sdk/v3 module"
for s in pulumi-analyzer-policy-python pulumi-resource-pulumi-python; do
  if [ -f "$src/sdk/python/dist/$s" ]; then install -m 0755 "$src/sdk/python/dist/$s" "$out/bin/"; fi
done

got=$("$out/bin/pulumi" version) || die "built pulumi does not run"
[ "$got" = "v$ver" ] || die "pulumi version printed '$got', expected v$ver"

mark_built "$tool" "$ver"
rm -rf "$src"
log "$tool $ver built in $((SECONDS - t0))s"
