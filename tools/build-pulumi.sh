#!/usr/bin/env bash
# Build the Pulumi CLI and the Python language host into the tool cache (see lib.sh):
#   pulumi                          github.com/pulumi/pulumi/pkg/v3 ./cmd/pulumi (+ sdk/v3)
#   pulumi-language-python          github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
#   pulumi-language-python-exec     script from the CLI's sdk/v3 zip (python/cmd/), needed beside the host
#   pulumi-resource-pulumi-python   script from the CLI's sdk/v3 zip (python/dist/), shipped beside
#                                   the host in upstream releases too (3.184's zip also had
#                                   pulumi-analyzer-policy-python, 3.276's has not: installed if present)
# Usage: tools/build-pulumi.sh
source "$(dirname "$0")/lib.sh"
CURRENT_TOOL=pulumi

# --- version pins -------------------------------------------------------------------------------
# The CLI (the engine) is Pulumi 3.276.0. Its tags v3.276.0 = sdk/v3.276.0 = pkg/v3.276.0 sit on one
# commit (2026-11-12 12:59:22Z; since 3.274 the three are tagged together), so pkg/v3 is taken at its
# tag, which the checksum database lists (3.184's pkg/v3 tag sat two commits past sdk/v3's and did
# not compile with it, hence the pseudo-version pinned below for the language host's tree).
# The language host is still the one of Pulumi 3.184.0, built in a tree of its own from that
# release's three modules. Its module is untagged, so it can only be fetched at the pseudo-version
# of a commit. Of the release commits of 3.150 to 3.259 the module proxy serves it at 3.184.0's
# (a8f88047ab64, 2025-07-18 11:02:45Z) and pkg/v3.163.0's only. 3.260 to 3.277 could not be tried:
# their commits are not known here (the module zips, the proxy's .info files and npm's
# @pulumi/pulumi 3.276.0 carry none; PyPI has no 3.273+), and the proxy answers no list, branch or
# commit query for the module (403 "This module version is not available"), only exact versions.
# 3.184's source does not compile against sdk/pkg 3.276 (LanguageRuntimeServer gained Cancel;
# toolchain.PythonPackage and toolchain.Info.Executable are gone), so the two trees stay apart.
# The engine and the host speak the language protocol, versioned by feature checks; the host's
# helper pulumi-language-python-exec is taken from 3.276 (the same arguments; it sizes the program's
# thread pool 4x the engine's parallelism, as the 3.276 SDK expects).
# The pip package `pulumi` (the Python SDK) is pinned in pyproject.toml, which says why.
PULUMI_VERSION=3.276.0
PKG_MOD=github.com/pulumi/pulumi/pkg/v3          # go.mod: replace sdk/v3 => ../sdk
PKG_VERSION=v$PULUMI_VERSION
SDK_MOD=github.com/pulumi/pulumi/sdk/v3          # at tag sdk/v3.276.0
# The language host's tree, 3.184.0 (commit a8f88047ab64): sdk/v3 at tag sdk/v3.184.0; pkg/v3 at the
# same commit, whose pseudo-version's base is pkg/v3.183.0, the newest pkg tag under it.
LANGHOST_VERSION=3.184.0
LANGHOST_PKG_PSEUDO=v3.183.1-0.20250718110245-a8f88047ab64
LANGHOST_MOD=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
LANGHOST_PSEUDO=v3.0.0-20250718110245-a8f88047ab64  # go.mod: pkg => ../../../../pkg, sdk => ../../..
# The Automation API runs `pulumi version` and rejects a non-semver answer; the language host
# reports the same variable (its own release's).
version_ldflag() { printf '%s' "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$1"; }

# The cache key names both, so a change of either pin builds anew.
tool=pulumi ver=$PULUMI_VERSION-host$LANGHOST_VERSION
if already_built "$tool" "$ver"; then
  link_built "$tool" "$ver"; log "$tool $ver already built"; exit 0
fi

t0=$SECONDS
out="$VAULTFLEET_TOOLS/$tool-$ver"
src="$VAULTFLEET_TOOLS/src/$tool-$ver"
rm -rf "$out" "$src"

# Two copies of the upstream repo layout, which the go.mod files' relative replaces expect:
#   cli/sdk/ cli/pkg/                                          3.276.0
#   host/sdk/ host/pkg/ host/sdk/python/cmd/pulumi-language-python/   3.184.0
log "$tool $ver: downloading $SDK_MOD@$PKG_VERSION, $PKG_MOD@$PKG_VERSION"
copy_module "$SDK_MOD@$PKG_VERSION" "$src/cli/sdk"
copy_module "$PKG_MOD@$PKG_VERSION" "$src/cli/pkg"
log "$tool $ver: downloading $SDK_MOD@v$LANGHOST_VERSION, $PKG_MOD@$LANGHOST_PKG_PSEUDO," \
  "$LANGHOST_MOD@$LANGHOST_PSEUDO"
copy_module "$SDK_MOD@v$LANGHOST_VERSION" "$src/host/sdk"
copy_module "$PKG_MOD@$LANGHOST_PKG_PSEUDO" "$src/host/pkg"
copy_module "$LANGHOST_MOD@$LANGHOST_PSEUDO" "$src/host/sdk/python/cmd/pulumi-language-python"
mkdir -p "$out/bin"

log "$tool $ver: go build pulumi $PULUMI_VERSION (the CLI; about 8 minutes on 2 cores with a cold build cache)"
t1=$SECONDS
( cd "$src/cli/pkg" && go_verified build -trimpath -ldflags "-s -w $(version_ldflag "$PULUMI_VERSION")" \
    -o "$out/bin/pulumi" ./cmd/pulumi ) || die "go build of ./cmd/pulumi failed"
log "$tool $ver: pulumi built in $((SECONDS - t1))s"

log "$tool $ver: go build pulumi-language-python $LANGHOST_VERSION"
t1=$SECONDS
( cd "$src/host/sdk/python/cmd/pulumi-language-python" && go_verified build -trimpath \
    -ldflags "-s -w $(version_ldflag "$LANGHOST_VERSION")" -o "$out/bin/pulumi-language-python" . ) \
  || die "go build of pulumi-language-python failed"
log "$tool $ver: pulumi-language-python built in $((SECONDS - t1))s"

# The language host runs pulumi-language-python-exec found beside its own binary.
log "$tool $ver: installing the Python helper scripts beside the language host"
install -m 0755 "$src/cli/sdk/python/cmd/pulumi-language-python-exec" "$out/bin/" \
  || die "pulumi-language-python-exec missing from the sdk/v3 module"
for s in pulumi-analyzer-policy-python pulumi-resource-pulumi-python; do
  if [ -f "$src/cli/sdk/python/dist/$s" ]; then install -m 0755 "$src/cli/sdk/python/dist/$s" "$out/bin/"; fi
done

got=$("$out/bin/pulumi" version) || die "built pulumi does not run"
[ "$got" = "v$PULUMI_VERSION" ] || die "pulumi version printed '$got', expected v$PULUMI_VERSION"

mark_built "$tool" "$ver"
rm -rf "$src"
log "$tool $ver built in $((SECONDS - t0))s"
