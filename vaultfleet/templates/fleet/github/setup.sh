#!/usr/bin/env bash
# Usage: setup.sh [--engine]
# The fleet's virtualenv .venv from requirements.txt (the pinned vaultfleet and its pinned SDKs);
# with --engine also the Pulumi engine and the vault and kubernetes provider plugins, at exactly the
# versions of those SDKs (an SDK asks the engine for a plugin of its own version; vaultfleet runs
# the engine offline, so a missing plugin is an error, never a download in the middle of a run).
set -euo pipefail
python3 -m venv .venv
.venv/bin/pip install --quiet -r requirements.txt
[ "${1:-}" = --engine ] || exit 0
version() { .venv/bin/python -c "from importlib.metadata import version; print(version('$1'))"; }
engine=$(version pulumi)
dir="$HOME/.cache/vaultfleet/engine-$engine"
if [ ! -x "$dir/pulumi/pulumi" ]; then
  mkdir -p "$dir"
  curl -fsSL "https://get.pulumi.com/releases/sdk/pulumi-v$engine-linux-x64.tar.gz" | tar -xz -C "$dir"
fi
"$dir/pulumi/pulumi" plugin install resource vault "$(version pulumi-vault)"
"$dir/pulumi/pulumi" plugin install resource kubernetes "$(version pulumi-kubernetes)"
# vaultfleet finds the engine on PATH (after its own tool cache, empty on a runner).
if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir/pulumi" >> "$GITHUB_PATH"; else echo "engine: add $dir/pulumi to PATH"; fi
