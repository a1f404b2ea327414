#!/usr/bin/env bash
# Builds a minimal Kubernetes control plane into the tool cache (see lib.sh):
#   kubernetes-<K8S_VERSION>/bin/{kube-apiserver,kube-controller-manager,kubectl}  from k8s.io/kubernetes
#   etcd-<ETCD_VERSION>/bin/etcd                                          from go.etcd.io/etcd/server/v3
# Both come from the Go module proxy through small wrapper modules (TOOLCHAIN.md section 5).
#
# Why not Debian's etcd-server: bookworm ships 3.4.23, below what kube-apiserver 1.36 supports
# (kubeadm's MinExternalEtcdVersion is 3.5.24, its default 3.6.8; the apiserver also disables
# RequestWatchProgress for etcd < 3.4.31). It did pass the smoke test (ServiceAccount, TokenRequest,
# TokenReview, token Secret, namespace deletion), but unsupported; building 3.6 costs ~2 min, needs no
# apt/root and matches the etcd client 3.6.8 that kubernetes 1.36 links. So etcd comes from the proxy.
source "$(dirname "$0")/lib.sh"

# v1.36.5: newest k8s.io/kubernetes patch whose zip and all 31 staging-module zips (k8s.io/*@v0.36.5)
# the proxy serves (v1.36.6 is 403; v1.35.6 lacks k8s.io/externaljwt, kube-proxy, sample-apiserver).
K8S_VERSION=1.36.5
# v3.6.16: newest etcd 3.6 patch on the proxy (v3.6.17 is 403); kubernetes 1.36 is tested with 3.6.x.
ETCD_VERSION=3.6.16

# The k8s.io staging modules that k8s.io/kubernetes requires at v0.0.0 (with local replaces that do
# not apply outside its own repo); each is tagged v0.<minor>.<patch> alongside v1.<minor>.<patch>.
staging_modules() {
  awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$1/go.mod" | sort -u
}

build_kubernetes() {
  CURRENT_TOOL=kubernetes
  # kubectl joined the set later: a cache entry without it is rebuilt (the Go build cache keeps
  # the two servers' rebuild to a relink).
  if already_built kubernetes "$K8S_VERSION" && [ -x "$VAULTFLEET_TOOLS/kubernetes-$K8S_VERSION/bin/kubectl" ]; then
    link_built kubernetes "$K8S_VERSION"
    log "kubernetes $K8S_VERSION already built"
    return
  fi
  local src="$VAULTFLEET_TOOLS/src/kubernetes-$K8S_VERSION" out="$VAULTFLEET_TOOLS/kubernetes-$K8S_VERSION"
  local staging_version="v0.${K8S_VERSION#1.}" major="${K8S_VERSION%%.*}" minor
  minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"

  log "kubernetes: downloading k8s.io/kubernetes@v$K8S_VERSION"
  # Build into $out.partial and rename at the end: a failed build leaves no half-filled $out, and
  # control planes already running from $out keep working during a rebuild.
  rm -rf "$src" "$out.partial"; mkdir -p "$src" "$out.partial/bin"; cd "$src"
  local kdir; kdir=$(module_dir "k8s.io/kubernetes@v$K8S_VERSION")
  # The tag's commit time from the proxy, used as buildDate so a rebuild gives the same /version.
  local build_date
  build_date=$(module_json "k8s.io/kubernetes@v$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(open(json.load(sys.stdin)["Info"]))["Time"])')

  log "kubernetes: writing wrapper module (staging modules at $staging_version)"
  go mod init local/k8s >/dev/null 2>&1 || die "go mod init failed"
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  local m n=0
  for m in $(staging_modules "$kdir"); do
    go mod edit -replace="$m=$m@$staging_version"; n=$((n + 1))
  done
  [ "$n" -gt 20 ] || die "found only $n staging modules in $kdir/go.mod"

  log "kubernetes: resolving dependencies"
  go_verified list -deps k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl \
    >/dev/null || die "resolving dependencies failed (a module version may be missing from the proxy)"

  # What hack/lib/version.sh sets: `kube-apiserver --version` and GET /version report these, and
  # clients (the Pulumi kubernetes provider among them) read the server version from /version.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    # gitCommit: the proxy's .info has no commit hash for this tag; empty beats "$Format:%H$".
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit="
  done

  local cmd start
  # kubectl: for the shell `vaultfleet lab env` prepares (kubectl --context lab-a ...).
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    # Cold on 2 shared cores: kube-apiserver ~14 min, then kube-controller-manager ~2 min (shared deps).
    log "kubernetes: go build $cmd"
    start=$SECONDS
    go_verified build -trimpath -ldflags "$ldflags" -o "$out.partial/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd" \
      || die "go build $cmd failed"
    log "kubernetes: $cmd built in $((SECONDS - start))s"
  done
  "$out.partial/bin/kube-apiserver" --version | grep -qx "Kubernetes v$K8S_VERSION" \
    || die "kube-apiserver --version does not report v$K8S_VERSION"
  rm -rf "$out"; mv "$out.partial" "$out"
  mark_built kubernetes "$K8S_VERSION"
  log "kubernetes $K8S_VERSION done"
}

build_etcd() {
  CURRENT_TOOL=etcd
  if already_built etcd "$ETCD_VERSION"; then
    link_built etcd "$ETCD_VERSION"
    log "etcd $ETCD_VERSION already built"
    return
  fi
  local src="$VAULTFLEET_TOOLS/src/etcd-$ETCD_VERSION" out="$VAULTFLEET_TOOLS/etcd-$ETCD_VERSION"
  rm -rf "$src" "$out.partial"; mkdir -p "$src" "$out.partial/bin"; cd "$src"

  # server/v3's go.mod replaces api, client/pkg, client/v3 and pkg with ../ paths; as a dependency of
  # a wrapper module those replaces are ignored and its required v3.6.N versions are used instead.
  log "etcd: writing wrapper module for go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go mod init local/etcd >/dev/null 2>&1 || die "go mod init failed"
  go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go_verified list -deps go.etcd.io/etcd/server/v3 >/dev/null || die "resolving dependencies failed"

  log "etcd: go build etcd (cold: about 2 min)"
  local start=$SECONDS
  go_verified build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
    -o "$out.partial/bin/etcd" go.etcd.io/etcd/server/v3 || die "go build etcd failed"
  log "etcd: built in $((SECONDS - start))s"
  "$out.partial/bin/etcd" --version | grep -q "etcd Version: $ETCD_VERSION" \
    || die "etcd --version does not report $ETCD_VERSION"
  rm -rf "$out"; mv "$out.partial" "$out"
  mark_built etcd "$ETCD_VERSION"
  log "etcd $ETCD_VERSION done"
}

build_etcd
build_kubernetes
