#!/usr/bin/env bash
# Builds the runners' container images for linux/amd64 and linux/arm64: static release binaries
# per platform, then one `FROM scratch` image per runner and platform
# (deploy/images/<runner>.Dockerfile) and one OCI image index per runner, without needing a
# Docker engine.
#
#   hack/build-images.sh                  # both platforms (arm64 where it can be built, see below)
#   hack/build-images.sh --platforms linux/amd64   # only these (comma-separated); each is required
#   hack/build-images.sh --engine docker  # force an engine: buildah | docker | none
#   hack/build-images.sh --pin-helm       # re-pin deploy/images/helm.lock to the current helms, then stop
#
# Outputs in target/images/ (or KAR_IMAGES_DIR):
#   <runner>-linux-<arch>.tar   docker-archive of one platform, named <repo>/<runner>:<tag> (for
#                               `docker load`, `kind load image-archive`, `ctr images import`)
#   <runner>.tar                the same file as <runner>-linux-amd64.tar (a hard link)
#   <runner>.oci.tar            OCI archive holding the image index of both platforms (buildah
#                               only; `skopeo copy --all oci-archive:...` pushes it)
#   context/linux-<arch>/<runner>/  what the Dockerfile copies, per platform
#   platforms.txt               each platform built (with its compiler) or skipped (with why)
#   sizes.txt
# With --engine none (or no engine installed) it still builds and checks the binaries and the
# contexts, and lints the Dockerfiles.
#
# The Rust standard library for a platform comes from the default (rustup) toolchain when it has
# it (`rustup target add aarch64-unknown-linux-gnu`); otherwise, for arm64 on an x86_64 host,
# from Debian: rustc-web and its arm64 standard library, which hack/install-tools.sh installs
# (KAR_RUST_WEB_RUSTC, KAR_RUST_WEB_ARM64_SYSROOT). A cross build links with Debian's
# <arch>-linux-gnu-gcc and its static glibc. Without any of that, arm64 is skipped with a
# one-line reason, unless it was asked for with --platforms or KAR_REQUIRE_ARM64=1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNNERS=(argo-runner helm-runner)
TAG=${KAR_IMAGE_TAG:-0.1.0}
REPO=${KAR_IMAGE_REPO:-action-runners}
# KAR_IMAGES_DIR: another output directory (hack/test.sh builds both platforms into one of its
# own in the background while the cluster runs on target/images).
OUT=${KAR_IMAGES_DIR:-target/images}
[[ $OUT == /* ]] || OUT=$PWD/$OUT
LOCK=deploy/images/helm.lock

log() { echo "build-images: $*" >&2; }
die() { log "error: $*"; exit 1; }

engine=auto
pin_helm=false
platforms=
while [[ $# -gt 0 ]]; do
  case $1 in
    --engine) engine=${2:?--engine needs buildah, docker or none}; shift 2 ;;
    --platforms) platforms=${2:?--platforms needs a list such as linux/amd64,linux/arm64}; shift 2 ;;
    --pin-helm) pin_helm=true; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
if [[ $engine == auto ]]; then
  if command -v buildah >/dev/null; then engine=buildah
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  else engine=none; fi
fi
case $engine in buildah | docker | none) ;; *) die "--engine must be buildah, docker or none" ;; esac

# The platforms asked for: ARCHES, and for each whether it may be skipped.
declare -A optional=()
ARCHES=()
if [[ -z $platforms ]]; then
  ARCHES=(amd64 arm64)
  [[ ${KAR_REQUIRE_ARM64:-} == 1 ]] || optional[arm64]=1
else
  IFS=, read -r -a wanted <<<"$platforms"
  for p in "${wanted[@]}"; do
    case ${p#linux/} in
      amd64 | arm64) ARCHES+=("${p#linux/}") ;;
      *) die "--platforms: $p is not linux/amd64 or linux/arm64" ;;
    esac
  done
fi

eval "$(bash hack/install-tools.sh --print)"

# The host builds its own platform natively and the other one across; KAR_HELM (the host's helm)
# is the linux/amd64 helm, so the host must be x86_64.
[[ $(uname -m) == x86_64 ]] || die "host $(uname -m): build the images on an x86_64 host (KAR_HELM is the host's helm, shipped as the linux/amd64 one)"
HOST_ARCH=amd64
triple_of() { case $1 in amd64) echo x86_64-unknown-linux-gnu ;; arm64) echo aarch64-unknown-linux-gnu ;; esac; }
gnu_of() { case $1 in amd64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; esac; }
qemu_of() { case $1 in amd64) echo qemu-x86_64-static ;; arm64) echo qemu-aarch64-static ;; esac; }
# What `file` says of an executable of that architecture.
file_arch_of() { case $1 in amd64) echo x86-64 ;; arm64) echo 'ARM aarch64' ;; esac; }
helm_of() { case $1 in amd64) echo "$KAR_HELM" ;; arm64) echo "${KAR_HELM_LINUX_ARM64:-}" ;; esac; }
bin_dir_of() { echo "target/static/$(triple_of "$1")/release"; }
wants() { [[ " ${ARCHES[*]} " == *" $1 "* ]]; }

# route ARCH -> how to build the runners for ARCH, as `KEY=VALUE` lines (the environment for
# cargo) and a last line `# <what compiles>`; fails with the reason on standard output when no
# way exists here.
route() {
  local arch=$1 triple gnu dir rustc_v env=()
  triple=$(triple_of "$arch")
  gnu=$(gnu_of "$arch")
  if [[ $arch != "$HOST_ARCH" ]]; then
    command -v "$gnu-gcc" >/dev/null || {
      echo "no $gnu-gcc to link with (Debian: gcc-$gnu libc6-dev-$arch-cross; hack/install-tools.sh installs them as root)"
      return 1
    }
    [[ $("$gnu-gcc" -print-file-name=libc.a) == /* ]] || {
      echo "$gnu-gcc has no static glibc (Debian: libc6-dev-$arch-cross)"
      return 1
    }
    local up=${triple//-/_}
    env+=("CARGO_TARGET_${up^^}_LINKER=$gnu-gcc" "CC_$up=$gnu-gcc" "AR_$up=$gnu-ar")
  fi
  dir=$(rustc --print target-libdir --target "$triple" 2>/dev/null || true)
  if [[ -n $dir ]] && compgen -G "$dir/libstd-*.rlib" >/dev/null; then
    printf '%s\n' "${env[@]}"
    echo "# $(rustc -V) (the default toolchain's $triple standard library)"
    return 0
  fi
  local sysroot=${KAR_RUST_WEB_ARM64_SYSROOT:-} rustc_web=${KAR_RUST_WEB_RUSTC:-}
  if [[ $arch == arm64 && -n $rustc_web && -n $sysroot ]] &&
    compgen -G "$sysroot/lib/rustlib/$triple/lib/libstd-*.rlib" >/dev/null; then
    # The library must come from the compiler's own version: the sysroot's directory is named
    # after the Debian version it was unpacked from (rust-web-arm64-1.96.0+dfsg1-...).
    rustc_v=$("$rustc_web" -V | awk '{ print $2 }')
    local lib_v=${sysroot%/usr}
    lib_v=${lib_v##*/rust-web-arm64-}
    lib_v=${lib_v%%+*}
    if [[ $rustc_v != "$lib_v" ]]; then
      echo "Debian's rustc-web is $rustc_v but its arm64 standard library in $sysroot is $lib_v: run hack/install-tools.sh"
      return 1
    fi
    printf '%s\n' "${env[@]}"
    echo "RUSTC=$rustc_web"
    echo "KAR_SYSROOT=$sysroot"
    echo "# $("$rustc_web" -V), Debian's rustc-web, with libstd-rust-web-dev:arm64 of the same version"
    return 0
  fi
  echo "no $triple standard library for $(rustc -V) (\`rustup target add $triple\` needs rustup's servers) and no Debian rustc-web with its arm64 library (hack/install-tools.sh installs them, as root on x86_64)"
  return 1
}

declare -A ROUTES=()
BUILT=()
mkdir -p "$OUT"
if ! $pin_helm; then
  : >"$OUT/platforms.txt"
  for arch in "${ARCHES[@]}"; do
    if why=$(route "$arch"); then
      ROUTES[$arch]=$why
      BUILT+=("$arch")
    elif [[ -n ${optional[$arch]:-} ]]; then
      log "linux/$arch: skipped: $why"
      echo "linux/$arch skipped: $why" >>"$OUT/platforms.txt"
    else
      die "linux/$arch: $why"
    fi
  done
fi

# helm: the binaries hack/install-tools.sh builds (KAR_HELM, Helm 4, and KAR_HELM_LINUX_ARM64, the
# same module for linux/arm64), checked against the lock file. Their main module is
# helm.sh/helm/v<major> (v4 now, v3 before): any major is read, and the lock's version says which.
helm_module() {
  go version -m "$1" | awk '$1 == "mod" && $2 ~ /^helm\.sh\/helm\/v[0-9]+$/ { print $3, $4 }'
}
helm_facts() {
  local mod go arm64=${KAR_HELM_LINUX_ARM64:-}
  mod=$(helm_module "$KAR_HELM")
  [[ -n $mod ]] || die "$KAR_HELM: go version -m names no helm.sh/helm/vN main module"
  go=$(go version "$KAR_HELM" | awk '{ print $2 }')
  echo "HELM_VERSION=${mod%% *}"
  echo "HELM_MODULE_SUM=${mod#* }"
  echo "HELM_GO_VERSION=$go"
  echo "HELM_SHA256=$(sha256sum "$KAR_HELM" | cut -d' ' -f1)"
  if [[ -n $arm64 && -x $arm64 ]]; then
    [[ $(helm_module "$arm64") == "$mod" && $(go version "$arm64" | awk '{ print $2 }') == "$go" ]] ||
      die "$arm64 is not the module and Go version of $KAR_HELM: run hack/install-tools.sh"
    echo "HELM_SHA256_LINUX_ARM64=$(sha256sum "$arm64" | cut -d' ' -f1)"
  else
    echo "HELM_SHA256_LINUX_ARM64=(missing: ${arm64:-KAR_HELM_LINUX_ARM64 is not set})"
  fi
}
# The lock's lines that matter for the platforms being built.
for_built() { if wants arm64; then cat; else grep -v '^HELM_SHA256_LINUX_ARM64='; fi; }
[[ -x $KAR_HELM ]] || die "$KAR_HELM is missing: run hack/install-tools.sh"
if $pin_helm; then
  [[ -x ${KAR_HELM_LINUX_ARM64:-} ]] || die "${KAR_HELM_LINUX_ARM64:-the arm64 helm} is missing: run hack/install-tools.sh"
  { sed -n '/^#/p' "$LOCK"; helm_facts; } >"$LOCK.tmp" && mv "$LOCK.tmp" "$LOCK"
  log "pinned: $(grep -v '^#' "$LOCK" | tr '\n' ' ')"
  exit 0
fi
ARCHES=("${BUILT[@]}")
if ! diff <(grep -v '^#' "$LOCK" | for_built) <(helm_facts | for_built) >&2; then
  die "the helm binaries do not match $LOCK (left: pinned, right: found; run hack/install-tools.sh if one is missing); if the change is deliberate, run $0 --pin-helm"
fi

# Static release binaries (the release profile: LTO, one codegen unit, opt-level s, strip,
# panic=abort). glibc's static libc: the musl targets cannot be installed on this machine.
# RUSTFLAGS reach only the target's crates (cargo is given --target), not build scripts.
packages=()
for r in "${RUNNERS[@]}"; do packages+=(-p "$r"); done
for arch in "${ARCHES[@]}"; do
  triple=$(triple_of "$arch")
  compiler=$(sed -n 's/^# //p' <<<"${ROUTES[$arch]}")
  env=()
  flags="${RUSTFLAGS:-} -C target-feature=+crt-static"
  while IFS= read -r kv; do
    case $kv in
      '' | '#'*) ;;
      KAR_SYSROOT=*) flags+=" --sysroot ${kv#KAR_SYSROOT=}" ;;
      *) env+=("$kv") ;;
    esac
  done <<<"${ROUTES[$arch]}"
  log "linux/$arch: building static release binaries into $(bin_dir_of "$arch") with $compiler"
  env "${env[@]}" RUSTFLAGS="$flags" \
    cargo build --release --locked --target "$triple" --target-dir target/static "${packages[@]}"
  echo "linux/$arch built with $compiler" >>"$OUT/platforms.txt"
  for r in "${RUNNERS[@]}"; do
    b=$(bin_dir_of "$arch")/$r
    desc=$(file -b "$b")
    grep -Eq 'static(-pie)? linked|statically linked' <<<"$desc" || die "$b is not static: $desc"
    grep -q "$(file_arch_of "$arch")" <<<"$desc" || die "$b is not linux/$arch: $desc"
    if ldd "$b" 2>&1 | grep -q '=>'; then die "$b links shared libraries: $(ldd "$b")"; fi
  done
  h=$(helm_of "$arch")
  desc=$(file -b "$h")
  grep -q 'statically linked' <<<"$desc" || die "$h is not static: $desc"
  grep -q "$(file_arch_of "$arch")" <<<"$desc" || die "$h is not linux/$arch: $desc"
done

# Build contexts, one per platform.
rm -rf "$OUT/context"
for arch in "${ARCHES[@]}"; do
  for r in "${RUNNERS[@]}"; do
    ctx=$OUT/context/linux-$arch/$r
    mkdir -p "$ctx"
    install -m 0555 "$(bin_dir_of "$arch")/$r" "$ctx/$r"
  done
  install -m 0555 "$(helm_of "$arch")" "$OUT/context/linux-$arch/helm-runner/helm"
  install -m 0444 /etc/ssl/certs/ca-certificates.crt "$OUT/context/linux-$arch/helm-runner/ca-certificates.crt"
done

# Lint: what each Dockerfile must be (hadolint is not packaged for Debian; these are the rules
# that matter for these images).
lint() {
  local r=$1 ctx=$2 f=deploy/images/$1.Dockerfile problems=()
  grep -Eq '^FROM scratch$' "$f" || problems+=("the only base must be scratch")
  [[ $(grep -c '^FROM ' "$f") == 1 ]] || problems+=("one stage only")
  grep -Eq '^USER [1-9][0-9]*:[1-9][0-9]*$' "$f" || problems+=("USER must be a numeric non-root uid:gid")
  grep -Eq "^ENTRYPOINT \[\"/$r\"\]$" "$f" || problems+=("ENTRYPOINT must be [\"/$r\"] (exec form: no shell)")
  if grep -Eq '^(RUN|ADD|SHELL)' "$f"; then problems+=("no RUN, ADD or SHELL (scratch has no shell, and no platform's emulation is needed)"); fi
  local src
  while read -r src; do
    [[ -e $ctx/$src ]] || problems+=("COPY source $src is not in $ctx")
  done < <(sed -n 's/^COPY \(--[a-z]*=[^ ]* \)*\([^ ]*\) .*/\2/p' "$f")
  if ((${#problems[@]})); then
    printf 'build-images: %s: %s\n' "$f" "${problems[@]}" >&2
    return 1
  fi
}
for arch in "${ARCHES[@]}"; do
  for r in "${RUNNERS[@]}"; do lint "$r" "$OUT/context/linux-$arch/$r"; done
done
log "Dockerfiles pass the lint"

: >"$OUT/sizes.txt"
size_line() { printf '%-44s %10d bytes\n' "$1" "$2" | tee -a "$OUT/sizes.txt"; }
for arch in "${ARCHES[@]}"; do
  for r in "${RUNNERS[@]}"; do size_line "binary $r linux/$arch" "$(stat -c %s "$(bin_dir_of "$arch")/$r")"; done
  size_line "binary helm linux/$arch" "$(stat -c %s "$(helm_of "$arch")")"
done

# buildah keeps its own storage under target/, so nothing outside the repository changes.
bah() {
  buildah --root "$OUT/storage" --runroot "$OUT/runroot" --storage-driver vfs "$@"
}

# smoke R ARCH IMAGE: the image's filesystem alone (no libc, no shell, no /etc) runs the binary
# as the image's user; without configuration it must exit 2 with a one-line reason. Another
# platform's binary runs under qemu-user, copied into this throw-away container.
smoke() {
  local r=$1 arch=$2 image=$3 c mnt msg code run=()
  [[ $(id -u) == 0 ]] && command -v chroot >/dev/null || return 0
  if [[ $arch != "$HOST_ARCH" ]]; then
    local qemu; qemu=$(command -v "$(qemu_of "$arch")" || true)
    if [[ -z $qemu ]]; then
      log "smoke: linux/$arch $r not run: no $(qemu_of "$arch") (Debian: qemu-user-static)"
      return 0
    fi
    run=(/.kar-qemu)
  fi
  c=$(bah from "$image")
  mnt=$(bah mount "$c")
  if ((${#run[@]})); then install -m 0555 "$qemu" "$mnt/.kar-qemu"; fi
  set +e
  msg=$(chroot --userspec=65532:65532 "$mnt" "${run[@]}" "/$r" 2>&1 </dev/null)
  code=$?
  set -e
  log "smoke: linux/$arch /$r as 65532 in the image's root: exit $code: $msg"
  if [[ $r == helm-runner ]]; then
    chroot --userspec=65532:65532 "$mnt" "${run[@]}" /usr/local/bin/helm version --short >&2 ||
      die "helm does not run in the linux/$arch image"
  fi
  bah umount "$c" >/dev/null
  bah rm "$c" >/dev/null
  [[ $code == 2 ]] || die "$r in its linux/$arch image: expected exit 2 without configuration, got $code"
}

# The host's platform last, so that with docker the plain name ends on the host's image.
ordered=()
for arch in "${ARCHES[@]}"; do [[ $arch == "$HOST_ARCH" ]] || ordered+=("$arch"); done
for arch in "${ARCHES[@]}"; do [[ $arch != "$HOST_ARCH" ]] || ordered+=("$arch"); done

for r in "${RUNNERS[@]}"; do
  name=$REPO/$r:$TAG
  [[ $engine != none ]] || continue
  rm -f "$OUT/$r.tar" "$OUT/$r.oci.tar"
  declare -A iid=()
  for arch in "${ordered[@]}"; do
    image=$name-linux-$arch
    archive=$OUT/$r-linux-$arch.tar
    ctx=$OUT/context/linux-$arch/$r
    rm -f "$archive"
    case $engine in
      buildah)
        log "building $image with buildah (vfs, chroot isolation)"
        bah build --isolation chroot --layers=false --platform "linux/$arch" \
          --iidfile "$OUT/iid" -f "deploy/images/$r.Dockerfile" -t "$image" "$ctx" >&2
        iid[$arch]=$(sed 's/^sha256://' "$OUT/iid")
        rm -f "$OUT/iid"
        # One platform, under the name the manifests in deploy/ use.
        bah push "$image" "docker-archive:$archive:$name" >&2
        smoke "$r" "$arch" "$image"
        ;;
      docker)
        log "building $image with docker"
        docker build --platform "linux/$arch" -f "deploy/images/$r.Dockerfile" -t "$image" "$ctx" >&2
        docker tag "$image" "$name"
        docker save -o "$archive" "$name"
        ;;
    esac
    size_line "image $r linux/$arch (tar)" "$(stat -c %s "$archive")"
    size_line "image $r linux/$arch (tar.gz)" "$(gzip -c "$archive" | wc -c)"
  done
  if wants amd64; then ln -f "$OUT/$r-linux-amd64.tar" "$OUT/$r.tar"; fi
  if [[ $engine == buildah ]]; then
    # The image index: one manifest per platform, pushed with its blobs as an OCI archive.
    bah manifest rm "$name" >/dev/null 2>&1 || true
    bah rmi "$name" >/dev/null 2>&1 || true
    bah manifest create "$name" >/dev/null
    for arch in "${ordered[@]}"; do
      bah manifest add "$name" "containers-storage:${iid[$arch]}" >/dev/null
    done
    bah manifest push --all --format oci "$name" "oci-archive:$OUT/$r.oci.tar:$name" >&2
    log "$OUT/$r.oci.tar: the image index of $name for $(printf 'linux/%s ' "${ordered[@]}")"
  else
    log "$r: no OCI image index with docker (its image store keeps one platform per name); use buildah for it"
  fi
done
# Earlier builds' images that no name refers to any longer (vfs keeps whole copies).
if [[ $engine == buildah ]]; then bah rmi --prune >/dev/null 2>&1 || true; fi
if [[ $engine == none ]]; then
  log "no image engine (buildah or a running docker): binaries and contexts built, Dockerfiles linted, no images"
fi
log "platforms: $(tr '\n' ';' <"$OUT/platforms.txt")"
log "sizes in $OUT/sizes.txt"
