#!/usr/bin/env bash
# Builds the peer tools the tests and the demo run against, from their Go modules at pinned
# versions, into a cache outside the repository. Each tool is rebuilt only when it is missing.
#
#   hack/install-tools.sh            # build everything (idempotent)
#   hack/install-tools.sh --print    # print the environment the tests read (eval-able)
#   hack/install-tools.sh --peers    # also build the peers the benchmark compares with (argo CLI)
#
# Cache: ${KAR_CACHE:-$HOME/.cache/kube-action-runners}/<tool>-<version>/
# Nothing is downloaded except Go modules through the Go module proxy.
set -euo pipefail

KUBERNETES_VERSION=v1.34.4        # k8s.io/kubernetes (kube-apiserver)
ETCD_VERSION=v3.6.16              # go.etcd.io/etcd/server/v3
ARGO_VERSION=v3.7.3               # github.com/argoproj/argo-workflows/v3 (CRDs and examples)
HELM_VERSION=v3.22.0              # helm.sh/helm/v3 (helm CLI)

CACHE=${KAR_CACHE:-$HOME/.cache/kube-action-runners}
BIN=$CACHE/bin
mkdir -p "$BIN"

ETCD_BIN=$BIN/etcd-$ETCD_VERSION
APISERVER_BIN=$BIN/kube-apiserver-$KUBERNETES_VERSION
HELM_BIN=$BIN/helm-$HELM_VERSION
ARGO_BIN=$BIN/argo-$ARGO_VERSION

print_env() {
  echo "export KAR_ETCD=$ETCD_BIN"
  echo "export KAR_KUBE_APISERVER=$APISERVER_BIN"
  echo "export KAR_HELM=$HELM_BIN"
  echo "export KAR_ARGO_DIR=$(argo_dir)"
  echo "export KAR_ARGO_CLI=$ARGO_BIN"
}

log() { echo "install-tools: $*" >&2; }

# go_mod_dir MODULE VERSION -> the module's unpacked directory in the Go module cache.
go_mod_dir() {
  go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

argo_dir() { go_mod_dir github.com/argoproj/argo-workflows/v3 "$ARGO_VERSION"; }

# build MAIN_MODULE VERSION PACKAGE OUTPUT [REPLACES_FILE] [LDFLAGS]
# Builds PACKAGE (a main package of MAIN_MODULE@VERSION) inside a throw-away tools module, so
# that modules whose go.mod uses replace directives (which `go install pkg@version` refuses)
# can still be built. REPLACES_FILE holds extra `replace` lines for that tools module; LDFLAGS
# are added to the linker flags (e.g. -X version stamps that a release build would set).
build() {
  local module=$1 version=$2 pkg=$3 out=$4 replaces=${5:-} ldflags=${6:-}
  if [[ -x $out ]]; then return 0; fi
  local dir; dir=$(mktemp -d "$CACHE/build.XXXXXX")
  log "building $pkg@$version (first time only; this takes several minutes)"
  (
    cd "$dir"
    go mod init kar.local/tools >/dev/null 2>&1
    if [[ -n $replaces ]]; then cat "$replaces" >>go.mod; fi
    go mod edit -require="$module@$version"
    GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp" "$pkg"
  )
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

main() {
  if [[ ${1:-} == --print ]]; then print_env; return; fi
  command -v go >/dev/null || { log "go is required"; exit 1; }
  export GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0

  build go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_BIN"

  if [[ ! -x $APISERVER_BIN ]]; then
    # k8s.io/kubernetes points its staging modules (k8s.io/api, ...) at ./staging; pin each to the
    # published v0.X.Y that matches the release instead.
    local gomod staging replaces
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
    staging=v0.${KUBERNETES_VERSION#v1.}
    replaces=$(mktemp)
    sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 '"$staging"'#p' "$gomod" >"$replaces"
    # Stamp the version as the release build does (hack/lib/version.sh), so clients such as helm
    # see v1.X.Y rather than v0.0.0-master.
    local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
    local v=k8s.io/component-base/version
    build k8s.io/kubernetes "$KUBERNETES_VERSION" k8s.io/kubernetes/cmd/kube-apiserver "$APISERVER_BIN" "$replaces" \
      "-X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    rm -f "$replaces"
  fi

  build helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$HELM_BIN" "" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

  argo_dir >/dev/null

  if [[ ${1:-} == --peers && ! -x $ARGO_BIN ]]; then
    # The Argo CLI, to compare `argo submit --wait` with argo-runner. The module embeds the UI
    # from ui/dist/app, which is built by yarn and not shipped in the module: as Argo's Makefile
    # does with STATIC_FILES=false, build from a copy of the module with a placeholder page.
    # Its go.mod's own replace directives are repeated in the tools module.
    local src=$CACHE/src/argo-workflows-$ARGO_VERSION replaces
    if [[ ! -d $src ]]; then
      mkdir -p "$CACHE/src"
      cp -r "$(argo_dir)" "$src.tmp" && chmod -R u+w "$src.tmp"
      mkdir -p "$src.tmp/ui/dist/app"
      echo "Built without static files" >"$src.tmp/ui/dist/app/index.html"
      mv "$src.tmp" "$src"
    fi
    replaces=$(mktemp)
    grep '^replace ' "$src/go.mod" >"$replaces" || true
    echo "replace github.com/argoproj/argo-workflows/v3 => $src" >>"$replaces"
    build github.com/argoproj/argo-workflows/v3 "$ARGO_VERSION" github.com/argoproj/argo-workflows/v3/cmd/argo \
      "$ARGO_BIN" "$replaces" "-X github.com/argoproj/argo-workflows/v3.version=$ARGO_VERSION"
    rm -f "$replaces"
  fi
  log "tools ready in $BIN"
}

main "$@"
