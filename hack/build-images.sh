#!/usr/bin/env bash
# Builds the runners' container images: static release binaries, then one `FROM scratch` image
# per runner (deploy/images/<runner>.Dockerfile), without needing a Docker engine.
#
#   hack/build-images.sh                  # binaries + images with buildah, or docker, or neither
#   hack/build-images.sh --engine docker  # force an engine: buildah | docker | none
#   hack/build-images.sh --pin-helm       # re-pin deploy/images/helm.lock to the current helm, then stop
#
# Outputs in target/images/: <runner>.tar (docker-archive, for `docker load` / `kind load
# image-archive`), context/<runner>/ (what the Dockerfile copies) and sizes.txt.
# With --engine none (or no engine installed) it still builds and checks the binaries and the
# contexts, and lints the Dockerfiles.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNNERS=(argo-runner helm-runner)
TAG=${KAR_IMAGE_TAG:-0.1.0}
REPO=${KAR_IMAGE_REPO:-action-runners}
TRIPLE=x86_64-unknown-linux-gnu
BIN_DIR=target/static/$TRIPLE/release
OUT=target/images
LOCK=deploy/images/helm.lock

log() { echo "build-images: $*" >&2; }
die() { log "error: $*"; exit 1; }

engine=auto
pin_helm=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --engine) engine=${2:?--engine needs buildah, docker or none}; shift 2 ;;
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

eval "$(bash hack/install-tools.sh --print)"

# helm: the binary hack/install-tools.sh builds (KAR_HELM, Helm 4), checked against the lock
# file. Its main module is helm.sh/helm/v<major> (v4 now, v3 before): any major is read, and the
# lock's version says which.
helm_facts() {
  local mod go
  mod=$(go version -m "$KAR_HELM" | awk '$1 == "mod" && $2 ~ /^helm\.sh\/helm\/v[0-9]+$/ { print $3, $4 }')
  [[ -n $mod ]] || die "$KAR_HELM: go version -m names no helm.sh/helm/vN main module"
  go=$(go version "$KAR_HELM" | awk '{ print $2 }')
  echo "HELM_VERSION=${mod%% *}"
  echo "HELM_MODULE_SUM=${mod#* }"
  echo "HELM_GO_VERSION=$go"
  echo "HELM_SHA256=$(sha256sum "$KAR_HELM" | cut -d' ' -f1)"
}
[[ -x $KAR_HELM ]] || die "$KAR_HELM is missing: run hack/install-tools.sh"
if $pin_helm; then
  { sed -n '/^#/p' "$LOCK"; helm_facts; } >"$LOCK.tmp" && mv "$LOCK.tmp" "$LOCK"
  log "pinned: $(grep -v '^#' "$LOCK" | tr '\n' ' ')"
  exit 0
fi
if ! diff <(grep -v '^#' "$LOCK") <(helm_facts) >&2; then
  die "$KAR_HELM does not match $LOCK (left: pinned, right: found); if the change is deliberate, run $0 --pin-helm"
fi

# Static release binaries (the release profile: LTO, one codegen unit, opt-level s, strip,
# panic=abort). glibc's static libc: the musl target cannot be installed on this machine.
log "building static release binaries into $BIN_DIR"
packages=()
for r in "${RUNNERS[@]}"; do packages+=(-p "$r"); done
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$TRIPLE" --target-dir target/static "${packages[@]}"
for r in "${RUNNERS[@]}"; do
  b=$BIN_DIR/$r
  file -b "$b" | grep -Eq 'static(-pie)? linked|statically linked' || die "$b is not static: $(file -b "$b")"
  if ldd "$b" 2>&1 | grep -q '=>'; then die "$b links shared libraries: $(ldd "$b")"; fi
done
file -b "$KAR_HELM" | grep -q 'statically linked' || die "$KAR_HELM is not static"

# Build contexts.
rm -rf "$OUT/context"
for r in "${RUNNERS[@]}"; do
  ctx=$OUT/context/$r
  mkdir -p "$ctx"
  install -m 0555 "$BIN_DIR/$r" "$ctx/$r"
done
install -m 0555 "$KAR_HELM" "$OUT/context/helm-runner/helm"
install -m 0444 /etc/ssl/certs/ca-certificates.crt "$OUT/context/helm-runner/ca-certificates.crt"

# Lint: what each Dockerfile must be (hadolint is not packaged for Debian; these are the rules
# that matter for these images).
lint() {
  local r=$1 f=deploy/images/$1.Dockerfile ctx=$OUT/context/$1 problems=()
  grep -Eq '^FROM scratch$' "$f" || problems+=("the only base must be scratch")
  [[ $(grep -c '^FROM ' "$f") == 1 ]] || problems+=("one stage only")
  grep -Eq '^USER [1-9][0-9]*:[1-9][0-9]*$' "$f" || problems+=("USER must be a numeric non-root uid:gid")
  grep -Eq "^ENTRYPOINT \[\"/$r\"\]$" "$f" || problems+=("ENTRYPOINT must be [\"/$r\"] (exec form: no shell)")
  if grep -Eq '^(RUN|ADD|SHELL)' "$f"; then problems+=("no RUN, ADD or SHELL (scratch has no shell)"); fi
  local src
  while read -r src; do
    [[ -e $ctx/$src ]] || problems+=("COPY source $src is not in the context")
  done < <(sed -n 's/^COPY \(--[a-z]*=[^ ]* \)*\([^ ]*\) .*/\2/p' "$f")
  if ((${#problems[@]})); then
    printf 'build-images: %s: %s\n' "$f" "${problems[@]}" >&2
    return 1
  fi
}
for r in "${RUNNERS[@]}"; do lint "$r"; done
log "Dockerfiles pass the lint"

: >"$OUT/sizes.txt"
size_line() { printf '%-28s %10d bytes\n' "$1" "$2" | tee -a "$OUT/sizes.txt"; }
for r in "${RUNNERS[@]}"; do size_line "binary $r" "$(stat -c %s "$BIN_DIR/$r")"; done
size_line "binary helm" "$(stat -c %s "$KAR_HELM")"

# buildah keeps its own storage under target/, so nothing outside the repository changes.
bah() {
  buildah --root "$PWD/$OUT/storage" --runroot "$PWD/$OUT/runroot" --storage-driver vfs "$@"
}

for r in "${RUNNERS[@]}"; do
  image=$REPO/$r:$TAG
  archive=$OUT/$r.tar
  case $engine in
    none) continue ;;
    buildah)
      log "building $image with buildah (vfs, chroot isolation)"
      bah build --isolation chroot --layers=false -f "deploy/images/$r.Dockerfile" -t "$image" "$OUT/context/$r" >&2
      rm -f "$archive"
      bah push "$image" "docker-archive:$archive:$image" >&2
      # Smoke test: the image's filesystem alone (no libc, no shell, no /etc) runs the binary
      # as the image's user; without configuration it must exit 2 with a one-line reason.
      if [[ $(id -u) == 0 ]] && command -v chroot >/dev/null; then
        c=$(bah from "$image")
        mnt=$(bah mount "$c")
        set +e
        msg=$(chroot --userspec=65532:65532 "$mnt" "/$r" 2>&1 </dev/null)
        code=$?
        set -e
        log "smoke: /$r as 65532 in the image's root: exit $code: $msg"
        if [[ $r == helm-runner ]]; then
          chroot --userspec=65532:65532 "$mnt" /usr/local/bin/helm version --short >&2 ||
            die "helm does not run in the image"
        fi
        bah umount "$c" >/dev/null
        bah rm "$c" >/dev/null
        [[ $code == 2 ]] || die "$r in its image: expected exit 2 without configuration, got $code"
      fi
      ;;
    docker)
      log "building $image with docker"
      docker build -f "deploy/images/$r.Dockerfile" -t "$image" "$OUT/context/$r" >&2
      docker save -o "$archive" "$image"
      ;;
  esac
  size_line "image $r (tar)" "$(stat -c %s "$archive")"
  size_line "image $r (tar.gz)" "$(gzip -c "$archive" | wc -c)"
done
if [[ $engine == none ]]; then
  log "no image engine (buildah or a running docker): binaries and contexts built, Dockerfiles linted, no images"
fi
log "sizes in $OUT/sizes.txt"
