# Shared helpers for the toolchain build scripts (sourced, not executed).
#
# Every tool is built from the Go module proxy into a per-machine cache outside the repo:
#   $VAULTFLEET_TOOLS/<tool>-<version>/bin/<binaries>   built once, keyed by version
#   $VAULTFLEET_TOOLS/bin/<binary> -> ../<tool>-<version>/bin/<binary>   what PATH points at
# A build is skipped when its stamp file exists, so a second run takes seconds.
set -euo pipefail

# Version pins live at the top of each build-<tool>.sh; pyproject.toml pins the Python SDKs to the
# same Pulumi and provider versions (an SDK asks the engine for a plugin of its own version).
export VAULTFLEET_TOOLS="${VAULTFLEET_TOOLS:-$HOME/.cache/vaultfleet/tools}"
export CGO_ENABLED=0
# sum.golang.org is not reachable here; module zips are still checked against each module's go.sum.
export GOSUMDB=off
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
mkdir -p "$VAULTFLEET_TOOLS/bin" "$VAULTFLEET_TOOLS/src"

log() { printf '[tools %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[tools] ERROR building %s: %s\n' "${CURRENT_TOOL:-?}" "$*" >&2; exit 1; }

# already_built TOOL VERSION: true when the cache holds a finished build.
already_built() { [ -f "$VAULTFLEET_TOOLS/$1-$2/.complete" ]; }

# mark_built TOOL VERSION: stamp the build and link its binaries into $VAULTFLEET_TOOLS/bin.
mark_built() {
  local dir="$VAULTFLEET_TOOLS/$1-$2"
  for b in "$dir"/bin/*; do ln -sfn "$b" "$VAULTFLEET_TOOLS/bin/$(basename "$b")"; done
  date -u +%FT%TZ > "$dir/.complete"
}

# link_built TOOL VERSION: (re)link binaries of a cached build, for a skipped build.
link_built() {
  local dir="$VAULTFLEET_TOOLS/$1-$2"
  for b in "$dir"/bin/*; do ln -sfn "$b" "$VAULTFLEET_TOOLS/bin/$(basename "$b")"; done
}

# module_dir MODULE@VERSION: download a module from the proxy, print its (read-only) cache dir.
module_dir() {
  local out
  out=$(go mod download -json "$1") || die "go mod download $1 failed: $(printf '%s' "$out" | grep -o '"Error": "[^"]*"' || true)"
  printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])'
}

# copy_module MODULE@VERSION DEST: a writable copy of a module, for builds that edit go.mod.
copy_module() {
  local src; src=$(module_dir "$1")
  rm -rf "$2"; mkdir -p "$(dirname "$2")"; cp -r "$src" "$2"; chmod -R u+w "$2"
}
