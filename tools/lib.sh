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
# Every module is verified against the checksum database sum.golang.org, which the module proxy
# serves ($GOPROXY/sumdb/sum.golang.org/...): a module zip or go.mod whose hash differs from the
# database's stops the build with one clear line (module_json, go_verified). No exceptions:
# GONOSUMDB and GOPRIVATE are empty, and check_sumdb_settings refuses a `go env -w` that sets them.
# GOFLAGS=-mod=mod lets go add missing go.sum lines; go adds one only after the database agrees.
# The go.sum lines go does not look up are those already in a go.sum: the go.sum of a module taken
# from the proxy (part of its zip, so verified with it: the upstream authors' go.sum), and the few
# hashes pinned in sumdb_unlisted below for module versions this database does not list.
export GOSUMDB=sum.golang.org
export GONOSUMDB= GOPRIVATE=
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

# check_sumdb_settings: stop unless go verifies every module against sum.golang.org. An empty
# environment variable does not override a value set with `go env -w`, so ask go itself.
check_sumdb_settings() {
  local sumdb='' nosumdb='' private=''
  { read -r sumdb; read -r nosumdb; read -r private; } < <(go env GOSUMDB GONOSUMDB GOPRIVATE) || true
  [ "$sumdb" = sum.golang.org ] && [ -z "$nosumdb$private" ] && return 0
  die "go would not verify every module against the checksum database (GOSUMDB='$sumdb'" \
    "GONOSUMDB='$nosumdb' GOPRIVATE='$private'; see $(go env GOENV)): unset them (go env -u NAME)"
}

# sumdb_failure FILE: when FILE (go's error output) reports a module that failed checksum
# verification, print one line saying which module, what differs and what to do, and succeed.
sumdb_failure() {
  GOMODCACHE="$(go env GOMODCACHE)" PINNED="$(sumdb_unlisted)" python3 - "$1" <<'PY'
import os, re, sys
text = open(sys.argv[1], errors="replace").read()
# go reports "M@V: verifying module: ERR", "M@V: verifying go.mod: ERR" (checksum database) and
# "verifying M@V: ERR", "verifying M@V/go.mod: ERR" (go.sum).
mod = r"(?P<path>[\w.~/-]+)@(?P<ver>v[\w.+-]+?)(?P<gomod>/go\.mod)?"
m = re.search(mod + r": verifying (?P<noun>module|go\.mod): (?P<err>.*)", text) or re.search(
    r"verifying " + mod + r": (?P<err>.*)", text
)
if not m:
    sys.exit(1)
path, ver, err = m["path"], m["ver"], m["err"].strip()
name = f"{path}@{ver}"
part = "go.mod" if m["gomod"] or m.groupdict().get("noun") == "go.mod" else "module zip"
esc = lambda s: re.sub(r"[A-Z]", lambda c: "!" + c[0].lower(), s)  # the module cache's escaping
cache = os.environ["GOMODCACHE"]
extracted = f"{cache}/{esc(path)}@{esc(ver)}"
clear = (
    f"Clear its module cache entry (chmod -R u+w {extracted}; rm -rf {extracted}"
    f" {cache}/cache/download/{esc(path)}/@v/{esc(ver)}.*) and run again"
)
hashes = dict(re.findall(r"^\t(downloaded|sum\.golang\.org|\S*go\.sum):\s+(h1:\S+)", text, re.M))
got = hashes.get("downloaded", "?")
pinned = f"{path} {ver} " in os.environ.get("PINNED", "") + "\n"
if "checksum mismatch" in err and "sum.golang.org" in hashes:
    print(
        f"checksum mismatch: the {part} of {name} ({got}) differs from the checksum database"
        f" sum.golang.org ({hashes['sum.golang.org']}); nothing was built from it. {clear}; if it"
        " fails again, the module proxy serves altered content: report it (module, both hashes,"
        " GOPROXY). Do not turn GOSUMDB off."
    )
elif "checksum mismatch" in err:
    want = next((h for k, h in hashes.items() if k.endswith("go.sum")), "?")
    if pinned:
        source = f"the hash pinned in tools/lib.sh (sumdb_unlisted) ({want})"
        cause = "other content than the tools were built from"
    else:
        # go.sum lines come from the checksum database or with a verified module's own go.sum.
        source = f"its verified hash in go.sum ({want}, from the checksum database or a verified go.sum)"
        cause = "altered content"
    print(
        f"checksum mismatch: the {part} of {name} ({got}) differs from {source}; nothing was built"
        f" from it. {clear}; if it fails again, the module proxy serves {cause}: report it (module,"
        " both hashes, GOPROXY). Do not turn GOSUMDB off."
    )
elif "checksum missing from sumdb response" in err or re.search(r"lookup/\S+: (404|410) ", err):
    print(
        f"{name} cannot be verified: the checksum database sum.golang.org, as the module proxy"
        f" serves it, does not list its {part}; nothing was built from it. Report it; pin its"
        " go.sum lines in tools/lib.sh (sumdb_unlisted) only after checking them another way."
    )
else:
    print(
        f"could not verify the {part} of {name} against the checksum database sum.golang.org"
        f" ({err}); nothing was built from it. Check that the module proxy"
        f" ({os.environ.get('GOPROXY') or 'GOPROXY'}) answers /sumdb/sum.golang.org/ and run again."
    )
PY
}

# sumdb_unlisted: go.sum lines for the module versions the build downloads that the checksum
# database, as the module proxy here serves it, does not list (its lookup answers 404), so go cannot
# verify them there. Their hashes are pinned here instead: go checks a module against its go.sum line
# when it has one, and a mismatch stops the build just as a database mismatch does. They are the
# hashes of the downloads the cached tools were built from; the proxy served the same content when
# they were pinned. The database does not list four github.com/openbao/go-kms-wrapping/wrappers/*
# versions OpenBao requires either; go checks those against OpenBao's own go.sum (verified with its
# zip). Drop a pair once `curl "$GOPROXY/sumdb/sum.golang.org/lookup/MODULE@VERSION"` answers it.
sumdb_unlisted() {
  cat <<'SUMS'
github.com/pulumi/pulumi/pkg/v3 v3.183.1-0.20250718110245-a8f88047ab64 h1:YyVpJ1C3O1VWVhZUo1fzeQPkXLV8I+4Mfv4Wp6ZR3gU=
github.com/pulumi/pulumi/pkg/v3 v3.183.1-0.20250718110245-a8f88047ab64/go.mod h1:Jd6IpgYooIih0IzADV9mZ03eOE4yWxSVB5H58toP/Rw=
github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 v3.0.0-20250718110245-a8f88047ab64 h1:3x/gafIPQwk/G6nK5rN9ssW4KXAQMFQypC30PlTigzM=
github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 v3.0.0-20250718110245-a8f88047ab64/go.mod h1:FHCsy+aAJdr+phX5jpdRdvedlCBI2osMos828Pbze7c=
github.com/openbao/openbao/api/auth/approle/v2 v2.5.0 h1:l/1dEzA/POS7Z1mOHHY+1SEnBY1Nytj1nhC4LuA9nRQ=
github.com/openbao/openbao/api/auth/approle/v2 v2.5.0/go.mod h1:7lojXD3vM6swnLX2dFqLGZecpGtjZXZFpqRQBXdOZpA=
github.com/openbao/openbao/api/auth/kubernetes/v2 v2.5.0 h1:xcDLUVGr9IGWeCdXGTHfdqh4rBgaRGmJiK2fXf8qgJc=
github.com/openbao/openbao/api/auth/kubernetes/v2 v2.5.0/go.mod h1:jN2xBfshwtcgHwrnud44xz1Lr/Eb4ZtlYWwP1FVba7U=
github.com/openbao/openbao/api/auth/userpass/v2 v2.5.0 h1:S02B8yupfXANbVon/pQmLh1DKFvRQk2yrFCrfvcO1Pw=
github.com/openbao/openbao/api/auth/userpass/v2 v2.5.0/go.mod h1:TAHyFaizBo7iD8aDhaZXWwNysCLWzD3GGP/C/umYOVI=
SUMS
}

# go_verified ARGS...: `go ARGS...`, output passed through. When it fails because a module could not
# be verified, stop with sumdb_failure's line.
go_verified() {
  check_sumdb_settings
  local errlog rc=0 msg
  errlog=$(mktemp)
  { go "$@" 2>&1 1>&3 3>&- | tee "$errlog" >&2; } 3>&1 || rc=$?
  if [ "$rc" -ne 0 ] && msg=$(sumdb_failure "$errlog"); then rm -f "$errlog"; die "$msg"; fi
  rm -f "$errlog"
  return "$rc"
}

# module_json MODULE@VERSION: download a module from the proxy, verified against the checksum
# database (or its pinned hash), and print go's JSON about it (Dir, Info, Sum, ...).
module_json() {
  check_sumdb_settings
  local tmp out rc=0 err msg
  # From a scratch module whose go.sum holds the pinned lines: go checks a module against its go.sum
  # line if it has one, else against the checksum database.
  tmp=$(mktemp -d)
  printf 'module vaultfleet.local/verify\n' > "$tmp/go.mod"
  sumdb_unlisted > "$tmp/go.sum"
  out=$(cd "$tmp" && go mod download -json "$1" 2>"$tmp/stderr") || rc=$?
  cat "$tmp/stderr" >&2
  if [ "$rc" -ne 0 ]; then
    # The error is on stderr, or in the JSON's "Error" field.
    err=$(printf '%s' "$out" | python3 -c 'import json,sys
try: print(json.load(sys.stdin).get("Error", ""))
except ValueError: pass' || true)
    printf '%s\n' "$err" >> "$tmp/stderr"
    msg=$(sumdb_failure "$tmp/stderr") || msg="go mod download $1 failed: ${err:-see above}"
    rm -rf "$tmp"
    die "$msg"
  fi
  rm -rf "$tmp"
  printf '%s\n' "$out"
}

# module_dir MODULE@VERSION: download a module (module_json), print its (read-only) cache dir.
module_dir() {
  local out; out=$(module_json "$1") || exit 1
  printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

# copy_module MODULE@VERSION DEST: a writable copy of a module, for builds that edit go.mod. Its
# go.sum came with the verified zip; go adds any line it lacks after checking the database.
copy_module() {
  local src; src=$(module_dir "$1")
  rm -rf "$2"; mkdir -p "$(dirname "$2")"; cp -r "$src" "$2"; chmod -R u+w "$2"
}

# stage_tree SRC ROOT_MODULE@VERSION "DIR=MODULE@VERSION"...: rebuild the upstream repo layout in
# SRC: the root module, with each nested module (absent from the root zip) copied into DIR.
stage_tree() {
  local src=$1 root=$2; shift 2
  log "$CURRENT_TOOL: downloading $root"
  copy_module "$root" "$src"
  local spec
  for spec in "$@"; do
    log "$CURRENT_TOOL: downloading ${spec#*=} into ${spec%%=*}/"
    copy_module "${spec#*=}" "$src/${spec%%=*}"
  done
}
