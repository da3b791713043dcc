#!/usr/bin/env bash
# Builds the peer tools the tests and the demo run against, from their Go modules at pinned
# versions, into a cache outside the repository. Each tool is rebuilt only when it is missing.
#
#   hack/install-tools.sh            # build everything (idempotent)
#   hack/install-tools.sh --early    # only what the cluster and the first tests need (below)
#   hack/install-tools.sh --late     # only the rest: the oldest minor's kube-apiserver, Argo 3, what
#                                    # builds the arm64 images, and the Argo CLI with --peers
#                                    # (hack/test.sh builds these in the background, niced, while
#                                    # the first tests run: they are needed only by later phases)
#   hack/install-tools.sh --print    # print the environment the tests read (eval-able)
#   hack/install-tools.sh --peers    # also build the peers the benchmark compares with (argo CLI)
#   hack/install-tools.sh --kwok     # --peers, and KWOK (simulated nodes for the scale bench)
#   KAR_ARGO_MAJOR=3 hack/install-tools.sh --print   # the same, with Argo 3 as the Argo in use
#   KAR_KUBERNETES=oldest hack/install-tools.sh --print   # the same, with the oldest minor's
#                                    # kube-apiserver as the tests' API server (no cluster of it)
#
# What it builds (cold, 2 cores: about 25 to 35 minutes, most of it Kubernetes):
#   etcd; kube-apiserver, kubelet, kube-proxy, kube-controller-manager, kube-scheduler and kubectl in one
#   `go build` (they share most of their packages, so one build compiles them once); the oldest
#   tested minor's kube-apiserver alone (KUBERNETES_OLDEST_VERSION); helm; Argo's
#   workflow-controller and argoexec (one build per Argo major: 4 and 3); CNCF Distribution's OCI registry (for the helm
#   tests of oci:// charts); versitygw (an S3 server: the cluster's artifact repository); the pause container (gcc, from the Kubernetes
#   module's build/pause/linux/pause.c). As root, it also installs the Debian packages the local
#   cluster needs (hack/cluster.sh) when they are missing.
# For the linux/arm64 images (hack/build-images.sh): helm 4 again for linux/arm64 (Go
#   cross-builds by itself), and, on an x86_64 host, what cross-builds the runners and runs them
#   under emulation: Debian's aarch64 cross gcc and static glibc, qemu-user-static and, where
#   rustup's toolchain has no aarch64 standard library (`rustup target add` needs rustup's
#   servers), Debian's rustc-web with its arm64 standard library (see install_arm64_rust).
#
# Cache: ${KAR_CACHE:-$HOME/.cache/kube-action-runners}/bin/<tool>-<version>
# Nothing is downloaded except Go modules through the Go module proxy and Debian packages.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2        # k8s.io/kubernetes: the cluster's and the tests' (the default)
KUBERNETES_OLDEST_VERSION=v1.33.13 # k8s.io/kubernetes: kube-apiserver only, the oldest minor k8s-openapi covers
ETCD_VERSION=v3.7.3               # go.etcd.io/etcd/server/v3 (the etcd minor Kubernetes 1.37 expects)
ARGO4_VERSION=v4.1.4              # github.com/argoproj/argo-workflows/v4 (the default Argo)
ARGO3_VERSION=v3.7.18             # github.com/argoproj/argo-workflows/v3 (still supported and tested)
HELM4_VERSION=v4.3.2              # helm.sh/helm/v4 (helm CLI: the default, shipped in the image)
HELM3_VERSION=v3.22.0             # helm.sh/helm/v3 (helm CLI: still supported and tested)
REGISTRY_VERSION=v3.1.2           # github.com/distribution/distribution/v3 (an OCI registry for the helm tests)
KWOK_VERSION=v0.8.0               # sigs.k8s.io/kwok (simulated nodes: hack/bench.sh --kwok only)
VERSITYGW_VERSION=v1.8.0          # github.com/versity/versitygw (an S3 server: Argo's artifact repository)

CACHE=${KAR_CACHE:-$HOME/.cache/kube-action-runners}
BIN=$CACHE/bin
mkdir -p "$BIN"

ETCD_BIN=$BIN/etcd-$ETCD_VERSION
APISERVER_BIN=$BIN/kube-apiserver-$KUBERNETES_VERSION
# The oldest minor's API server alone (no node of it), for the tests that need only an API server.
OLDEST_APISERVER_BIN=$BIN/kube-apiserver-$KUBERNETES_OLDEST_VERSION
# Built together with kube-apiserver (one `go build`); kubectl too, so the scripts use the
# pinned client rather than whatever the machine has.
NODE_CMDS=(kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
# The API server the tests that need only an API server run against: the default minor's, or
# the oldest's with KAR_KUBERNETES=oldest (hack/test.sh runs those tests under each).
case ${KAR_KUBERNETES:-default} in
  default) TEST_APISERVER_BIN=$APISERVER_BIN TEST_APISERVER_VERSION=$KUBERNETES_VERSION ;;
  oldest) TEST_APISERVER_BIN=$OLDEST_APISERVER_BIN TEST_APISERVER_VERSION=$KUBERNETES_OLDEST_VERSION ;;
  *) echo "install-tools: KAR_KUBERNETES is ${KAR_KUBERNETES}: it must be default or oldest" >&2; exit 2 ;;
esac
PAUSE_BIN=$BIN/pause-$KUBERNETES_VERSION
# The Argo in use (its controller, executor, CRDs and examples): Argo 4 unless KAR_ARGO_MAJOR=3.
# Both are built; hack/test.sh runs the Argo tests under each in turn.
case ${KAR_ARGO_MAJOR:-4} in
  4) ARGO_VERSION=$ARGO4_VERSION ;;
  3) ARGO_VERSION=$ARGO3_VERSION ;;
  *) echo "install-tools: KAR_ARGO_MAJOR is ${KAR_ARGO_MAJOR}: it must be 3 or 4" >&2; exit 2 ;;
esac
# Debian packages the local cluster (hack/cluster.sh) runs on: the container runtime, the CNI
# plugins, buildah to build images without a Docker engine, busybox for the test images, ip and
# openssl for its network and certificates (hack/cluster.sh's HOST_COMMANDS), gnupg for the
# helm tests that sign a chart.
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins buildah busybox-static iptables iproute2 openssl conntrack gcc libc6-dev file time gnupg)
# The linux/arm64 runners, cross-built on an x86_64 host (hack/build-images.sh): the linker and
# static glibc for aarch64, and qemu-user to run what was built (tests/tests/arm64_qemu.rs).
ARM64_DEBIAN_PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
# rustup's toolchain here has no aarch64 standard library and rustup's servers cannot be reached.
# Debian ships a Rust toolchain new enough for the workspace (edition 2024, rust-version 1.89) in
# bookworm-security: rustc-web (1.96.0 when this was written), with its standard library for arm64
# in libstd-rust-web-dev:arm64, of exactly the same version. That library is unpacked into the
# cache (RUST_WEB_ARM64_SYSROOT), not installed: installing it would pull in arm64 copies of
# LLVM and ICU (libstd-rust-web-1.96:arm64) and move amd64 libraries in lockstep, none of which
# a static cross build uses.
RUST_WEB_PACKAGE=rustc-web
HELM4_BIN=$BIN/helm-$HELM4_VERSION
HELM3_BIN=$BIN/helm-$HELM3_VERSION
# Helm 4 for the linux/arm64 helm-runner image.
HELM4_ARM64_BIN=$BIN/helm-$HELM4_VERSION-linux-arm64
# The benchmark's Argo CLI is the default Argo's.
ARGO_BIN=$BIN/argo-$ARGO4_VERSION
REGISTRY_BIN=$BIN/registry-$REGISTRY_VERSION
KWOK_BIN=$BIN/kwok-$KWOK_VERSION
VERSITYGW_BIN=$BIN/versitygw-$VERSITYGW_VERSION

print_env() {
  echo "export KAR_ETCD=$ETCD_BIN"
  echo "export KAR_KUBE_APISERVER=$TEST_APISERVER_BIN"
  echo "export KAR_KUBE_APISERVER_VERSION=$TEST_APISERVER_VERSION"
  echo "export KAR_KUBERNETES_OLDEST_VERSION=$KUBERNETES_OLDEST_VERSION"
  echo "export KAR_KUBE_BIN_DIR=$BIN KAR_KUBERNETES_VERSION=$KUBERNETES_VERSION"
  echo "export KAR_KUBECTL=$BIN/kubectl-$KUBERNETES_VERSION"
  echo "export KAR_PAUSE=$PAUSE_BIN"
  echo "export KAR_WORKFLOW_CONTROLLER=$BIN/workflow-controller-$ARGO_VERSION KAR_ARGOEXEC=$BIN/argoexec-$ARGO_VERSION"
  echo "export KAR_ARGO_VERSION=$ARGO_VERSION KAR_ARGO3_VERSION=$ARGO3_VERSION KAR_ARGO4_VERSION=$ARGO4_VERSION"
  # KAR_HELM is the default helm (Helm 4, the one the image ships); KAR_HELM3 and KAR_HELM4 name
  # each major version, for the tests that run against both.
  # One variable a line: tests/src/tools.rs reads these lines.
  echo "export KAR_HELM=$HELM4_BIN"
  echo "export KAR_HELM4=$HELM4_BIN"
  echo "export KAR_HELM3=$HELM3_BIN"
  echo "export KAR_HELM_LINUX_ARM64=$HELM4_ARM64_BIN"
  # Debian's rustc-web and its aarch64 standard library (empty where rustc-web is not installed).
  echo "export KAR_RUST_WEB_RUSTC=$(rust_web_rustc)"
  echo "export KAR_RUST_WEB_ARM64_SYSROOT=$(rust_web_arm64_sysroot)"
  echo "export KAR_ARGO_DIR=$(argo_dir "$ARGO_VERSION")"
  # The OCI registry the helm tests push charts to and pull them from (loopback only).
  echo "export KAR_REGISTRY=$REGISTRY_BIN"
  # The S3 server the local cluster's Argo artifact repository runs on (cluster bridge only).
  echo "export KAR_VERSITYGW=$VERSITYGW_BIN"
  echo "export KAR_ARGO_CLI=$ARGO_BIN KAR_ARGO_CLI_VERSION=$ARGO4_VERSION"
  # KWOK and its module's directory (its default Stages, kustomize/stage/), for the scale bench.
  # (The directory by its path in the module cache, where `--kwok` downloaded it: --print fetches
  # nothing.)
  echo "export KAR_KWOK=$KWOK_BIN KAR_KWOK_DIR=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION"
}

log() { echo "install-tools: $*" >&2; }

# rust_web_version -> the installed rustc-web's Debian version (empty when not installed).
rust_web_version() {
  { dpkg-query -W -f='${Status} ${Version}' "$RUST_WEB_PACKAGE" 2>/dev/null || true; } |
    awk '$1 == "install" && $3 == "installed" { print $4 }'
}

# rust_web_rustc -> rustc-web's compiler (it installs as /usr/bin/rustc; rustup's proxies come
# first on PATH, so nothing else uses it), or nothing when rustc-web is not installed.
rust_web_rustc() { [[ -z $(rust_web_version) ]] || echo /usr/bin/rustc; }

# rust_web_arm64_sysroot -> the sysroot holding rustc-web's aarch64 standard library
# (lib/rustlib/aarch64-unknown-linux-gnu/lib), one directory per Debian version, or nothing when
# rustc-web is not installed.
rust_web_arm64_sysroot() {
  local v; v=$(rust_web_version)
  [[ -z $v ]] || echo "$CACHE/rust-web-arm64-$v/usr"
}

# rustup_has_aarch64 -> success when the default (rustup) toolchain has the aarch64 standard
# library (`rustup target add aarch64-unknown-linux-gnu` worked).
rustup_has_aarch64() {
  command -v rustc >/dev/null || return 1
  local dir
  dir=$(rustc --print target-libdir --target aarch64-unknown-linux-gnu 2>/dev/null) || return 1
  compgen -G "$dir/libstd-*.rlib" >/dev/null
}

# go_mod_dir MODULE VERSION -> the module's unpacked directory in the Go module cache.
go_mod_dir() {
  go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# argo_module VERSION -> Argo's Go module for that version (github.com/argoproj/argo-workflows/vN).
argo_module() { local v=${1#v}; echo "github.com/argoproj/argo-workflows/v${v%%.*}"; }

# argo_dir VERSION -> Argo's module, unpacked (CRDs, examples, manifests).
argo_dir() { go_mod_dir "$(argo_module "$1")" "$1"; }

# argo_replaces VERSION -> a temporary file with the `replace` lines that build Argo's commands from a
# copy of its module ($CACHE/src/argo-workflows-<version>, made once) with what the module zip
# leaves out put back, as Argo's own build has it:
# - workflow/executor/osspecific/signal_linux.go, in the repository a symbolic link to
#   signal_darwin.go (module zips leave links out; without it argoexec does not build for Linux:
#   "undefined: Setpgid"; the same in Argo 3.7 and 4.1);
# - ui/dist/app, the UI the CLI embeds, built by yarn: a placeholder page, as Argo's Makefile
#   makes with STATIC_FILES=false.
# The module's own replace directives are repeated.
argo_replaces() {
  local version=$1
  local src=$CACHE/src/argo-workflows-$version
  if [[ ! -f $src/.kar-complete ]]; then
    rm -rf "$src" "$src.tmp"
    mkdir -p "$CACHE/src"
    cp -r "$(argo_dir "$version")" "$src.tmp" && chmod -R u+w "$src.tmp"
    ln -s signal_darwin.go "$src.tmp/workflow/executor/osspecific/signal_linux.go"
    mkdir -p "$src.tmp/ui/dist/app"
    echo "Built without static files" >"$src.tmp/ui/dist/app/index.html"
    touch "$src.tmp/.kar-complete"
    mv "$src.tmp" "$src"
  fi
  local f
  f=$(go_replaces "$src")
  echo "replace $(argo_module "$version") => $src" >>"$f"
  echo "$f"
}

# build_many MAIN_MODULE VERSION "PKG..." "OUT..." [REPLACES_FILE] [LDFLAGS]
# Builds the main packages PKG... of MAIN_MODULE@VERSION in one `go build` (shared packages are
# compiled once) inside a throw-away tools module, so that modules whose go.mod uses replace
# directives (which `go install pkg@version` refuses) can still be built. OUT... are the
# binaries' paths, in the order of PKG...; nothing is built when they all exist. REPLACES_FILE
# holds extra `replace` lines for the tools module; LDFLAGS are added to the linker flags (e.g.
# -X version stamps that a release build would set).
build_many() {
  local module=$1 version=$2 replaces=${5:-} ldflags=${6:-}
  local -a pkgs outs
  read -r -a pkgs <<<"$3"
  read -r -a outs <<<"$4"
  local missing=false o
  for o in "${outs[@]}"; do [[ -x $o ]] || missing=true; done
  $missing || return 0
  local dir; dir=$(mktemp -d "$CACHE/build.XXXXXX")
  local t0=$SECONDS
  log "building ${pkgs[*]} @$version (first time only; this takes several minutes)"
  (
    cd "$dir"
    go mod init kar.local/tools >/dev/null 2>&1
    if [[ -n $replaces ]]; then cat "$replaces" >>go.mod; fi
    # The main module's own go.sum: its dependencies' hashes as its release recorded them, so
    # that none needs a checksum-database lookup (the database does not know every pseudo-version
    # Argo 4 pins: "verifying module: ... 404 Not Found").
    local sum
    sum="$(go_mod_dir "$module" "$version")/go.sum"
    if [[ -f $sum ]]; then cp "$sum" go.sum && chmod u+w go.sum; fi
    go mod edit -require="$module@$version"
    mkdir out
    # One package: name the output (a path ending in /vN would otherwise name it after the
    # element before); several: go names each after its package.
    local o=out/
    ((${#pkgs[@]} > 1)) || o=out/bin
    GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w $ldflags" -o "$o" "${pkgs[@]}"
  )
  local i
  if ((${#pkgs[@]} == 1)); then
    mv "$dir/out/bin" "${outs[0]}"
  else
    for i in "${!pkgs[@]}"; do mv "$dir/out/$(basename "${pkgs[$i]}")" "${outs[$i]}"; done
  fi
  rm -rf "$dir"
  log "built ${pkgs[*]} in $((SECONDS - t0)) s"
}

# build MAIN_MODULE VERSION PACKAGE OUTPUT [REPLACES_FILE] [LDFLAGS]: one main package.
build() { build_many "$1" "$2" "$3" "$4" "${5:-}" "${6:-}"; }

# go_replaces MODULE_DIR -> a temporary file with the module's own `replace` lines, which a tools
# module that requires it must repeat.
go_replaces() {
  local f; f=$(mktemp)
  grep '^replace ' "$1/go.mod" >"$f" || true
  echo "$f"
}

# build_kubernetes VERSION CMD... -> builds k8s.io/kubernetes/cmd/CMD... at VERSION in one
# `go build` (they share most of their packages) into $BIN/CMD-VERSION, when one is missing.
build_kubernetes() {
  local version=$1; shift
  local -a pkgs=() outs=()
  local c missing=false
  for c in "$@"; do
    pkgs+=("k8s.io/kubernetes/cmd/$c")
    outs+=("$BIN/$c-$version")
    [[ -x $BIN/$c-$version ]] || missing=true
  done
  $missing || return 0
  # k8s.io/kubernetes points its staging modules (k8s.io/api, ...) at ./staging; pin each to the
  # published v0.X.Y that matches the release instead.
  local gomod staging replaces
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  staging=v0.${version#v1.}
  replaces=$(mktemp)
  sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 '"$staging"'#p' "$gomod" >"$replaces"
  # Stamp the version as the release build does (hack/lib/version.sh), so clients such as helm
  # see v1.X.Y rather than v0.0.0-master.
  local minor=${version#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version
  build_many k8s.io/kubernetes "$version" "${pkgs[*]}" "${outs[*]}" "$replaces" \
    "-X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  rm -f "$replaces"
}

# Debian packages for the local cluster and the arm64 cross build; only as root, and only what is
# missing.
install_packages() {
  local missing=() p wanted=("${DEBIAN_PACKAGES[@]}")
  if [[ $(uname -m) == x86_64 ]]; then
    wanted+=("${ARM64_DEBIAN_PACKAGES[@]}")
    rustup_has_aarch64 || wanted+=("$RUST_WEB_PACKAGE")
  fi
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]]; then
    log "not root: skipping the Debian packages the local cluster needs (${missing[*]})"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The aarch64 standard library matching the installed rustc-web, unpacked from Debian's
# libstd-rust-web-dev:arm64 of the same version into RUST_WEB_ARM64_SYSROOT. apt fetches it
# (dpkg learns the arm64 architecture for that; no arm64 package is installed). Only as root,
# only where rustc-web is installed (install_packages), and only once per version.
install_arm64_rust() {
  local version sysroot
  version=$(rust_web_version)
  [[ -n $version ]] || return 0
  sysroot=$(rust_web_arm64_sysroot)
  compgen -G "$sysroot/lib/rustlib/aarch64-unknown-linux-gnu/lib/libstd-*.rlib" >/dev/null && return 0
  if [[ $(id -u) != 0 ]]; then
    log "not root: skipping the arm64 standard library of rustc-web $version"
    return 0
  fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64 (apt's package lists for arm64; nothing arm64 is installed)"
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  local dir=${sysroot%/usr} tmp
  tmp=$(mktemp -d "$CACHE/rust-web-arm64.XXXXXX")
  log "unpacking libstd-rust-web-dev:arm64=$version into $dir"
  # As root apt downloads as _apt; the directory is ours, so no sandbox.
  if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "libstd-rust-web-dev:arm64=$version"); then
    rm -rf "$tmp"
    log "libstd-rust-web-dev:arm64=$version cannot be downloaded (a newer rustc-web replaced it?): run apt-get update && apt-get install rustc-web, then this script again"
    return 1
  fi
  dpkg-deb -x "$tmp"/libstd-rust-web-dev_*_arm64.deb "$tmp/root"
  rm -rf "$dir"
  mv "$tmp/root" "$dir"
  rm -rf "$tmp"
}

main() {
  if [[ ${1:-} == --print ]]; then print_env; return; fi
  command -v go >/dev/null || { log "go is required"; exit 1; }
  export GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
  local early=true late=true peers=false kwok=false a
  for a in "$@"; do
    case $a in
      --early) late=false ;;
      --late) early=false ;;
      --peers) peers=true ;;
      --kwok) peers=true kwok=true ;;
      *) log "unknown argument $a (see the header of $0)"; exit 2 ;;
    esac
  done
  if $early; then early_tools; fi
  if $late; then late_tools "$peers"; fi
  if $kwok; then
    # KWOK's controller, which plays the kubelet of many simulated nodes (the scale bench).
    build sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "$KWOK_BIN"
  fi
  log "tools ready in $BIN"
}

# What the cluster and the first phase of tests need: etcd, the Debian packages, Kubernetes, the
# pause container, Argo 4, both helms, the OCI registry, the S3 server.
early_tools() {
  build go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_BIN"

  install_packages

  # Kubernetes: every command the cluster runs, in one build.
  build_kubernetes "$KUBERNETES_VERSION" "${NODE_CMDS[@]}"

  # The pod sandbox ("pause") container, as Kubernetes builds it: a static C program.
  if [[ ! -x $PAUSE_BIN ]] && command -v gcc >/dev/null; then
    local kdir
    kdir=$(go_mod_dir k8s.io/kubernetes "$KUBERNETES_VERSION")
    gcc -Os -Wall -Werror -static -DVERSION="$KUBERNETES_VERSION" -o "$PAUSE_BIN.tmp" "$kdir/build/pause/linux/pause.c"
    strip "$PAUSE_BIN.tmp"
    mv "$PAUSE_BIN.tmp" "$PAUSE_BIN"
  fi

  # Argo 4's real workflow-controller and its executor (Argo 3's: late_tools).
  build_argo "$ARGO4_VERSION"

  # helm, both major versions, stamped as a release build stamps them (each module's
  # internal/version package holds `version` and `gitTreeState`; unstamped, Helm 4 reports "v4.3").
  local m hmod hver hbin
  for m in "helm.sh/helm/v4 $HELM4_VERSION $HELM4_BIN" "helm.sh/helm/v3 $HELM3_VERSION $HELM3_BIN"; do
    read -r hmod hver hbin <<<"$m"
    build "$hmod" "$hver" "$hmod/cmd/helm" "$hbin" "" \
      "-X $hmod/internal/version.version=$hver -X $hmod/internal/version.gitTreeState=clean"
  done
  # The OCI registry (CNCF Distribution's `registry`) for the helm tests of oci:// charts.
  build github.com/distribution/distribution/v3 "$REGISTRY_VERSION" \
    github.com/distribution/distribution/v3/cmd/registry "$REGISTRY_BIN" "" \
    "-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION"

  # versitygw, an S3 server (its POSIX backend: buckets are directories), as the local cluster's
  # artifact repository for Argo (hack/cluster/artifacts.sh).
  build github.com/versity/versitygw "$VERSITYGW_VERSION" \
    github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_BIN" "" \
    "-X main.Version=$VERSITYGW_VERSION -X main.Build=module"
}

# What only later phases need: the oldest minor's kube-apiserver (the bare-API-server tests'
# second run), Argo 3 (the Argo tests' second run), what builds and runs the linux/arm64 images
# (rustc-web's arm64 standard library, Helm 4 for linux/arm64) and, with PEERS=true, the Argo
# CLI (the benchmark).
late_tools() {
  local peers=$1
  build_argo "$ARGO3_VERSION"
  build_kubernetes "$KUBERNETES_OLDEST_VERSION" kube-apiserver
  install_arm64_rust
  # Helm 4 for linux/arm64 (the arm64 helm-runner image), stamped as the host's.
  (
    export GOOS=linux GOARCH=arm64
    build helm.sh/helm/v4 "$HELM4_VERSION" helm.sh/helm/v4/cmd/helm "$HELM4_ARM64_BIN" "" \
      "-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  )
  if $peers && [[ ! -x $ARGO_BIN ]]; then
    # The Argo CLI, to compare `argo submit --wait` with argo-runner.
    local replaces am
    am=$(argo_module "$ARGO4_VERSION")
    replaces=$(argo_replaces "$ARGO4_VERSION")
    build "$am" "$ARGO4_VERSION" "$am/cmd/argo" "$ARGO_BIN" "$replaces" "-X $am.version=$ARGO4_VERSION"
    rm -f "$replaces"
  fi
}

# build_argo VERSION: Argo's real workflow-controller and its executor at VERSION, from the same
# module as its CRDs, in one build.
build_argo() {
  local av=$1 am replaces
  am=$(argo_module "$av")
  replaces=$(argo_replaces "$av")
  build_many "$am" "$av" "$am/cmd/workflow-controller $am/cmd/argoexec" \
    "$BIN/workflow-controller-$av $BIN/argoexec-$av" "$replaces" "-X $am.version=$av"
  rm -f "$replaces"
}

main "$@"
