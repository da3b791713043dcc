# shellcheck shell=bash
# The images the cluster runs, all built here and imported into containerd; nothing is ever
# pulled (sourced by hack/cluster.sh).

# image NAME CONTEXT_DIR CONTAINERFILE_TEXT: builds NAME with buildah (vfs, chroot isolation, no
# Docker engine) into an OCI archive in $IMAGES named after NAME and a digest of the context and
# the Containerfile (so it is rebuilt only when they change), and imports it into containerd
# under its full name.
image() {
  local name=$1 ctx=$2 file=$3 digest
  echo "$file" >"$ctx/Containerfile"
  digest=$(cd "$ctx" && {
    find . \( -type f -o -type l \) -printf '%p %l %m\n' | sort
    find . -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16)
  local base
  base=$IMAGES/$(echo "$name" | tr '/:' '__')
  local archive=$base.$digest.oci.tar
  mkdir -p "$IMAGES"
  if [[ ! -f $archive ]]; then
    local b=(buildah --root "$IMAGES/buildah/storage" --runroot "$IMAGES/buildah/run" --storage-driver vfs)
    "${b[@]}" build --isolation chroot --layers=false -q -t "$name" -f "$ctx/Containerfile" "$ctx" >/dev/null
    rm -f "$base".*.oci.tar
    "${b[@]}" push -q "$name" "oci-archive:$archive.tmp:$name" >/dev/null
    "${b[@]}" rmi "$name" >/dev/null 2>&1 || true
    mv "$archive.tmp" "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
}

# Every `alpine:<tag>` image the examples of either Argo major name (Argo 3.7's alpine:3.6 to 3.8,
# Argo 4.1's alpine:3.23, both alpine:latest), read from the modules hack/install-tools.sh fetched,
# one a line: the busybox image stands in for them all (the examples run `sh -c` and `echo`), so an
# Argo upgrade that moves its examples to a new tag cannot leave their pods in ImagePullBackOff
# (nothing can be pulled here).
argo_example_alpine_images() {
  local major dir
  for major in 4 3; do
    dir=$(KAR_ARGO_MAJOR=$major bash hack/install-tools.sh --print | sed -n 's/^export KAR_ARGO_DIR=//p')
    grep -rhoE "image: *['\"]?alpine:[A-Za-z0-9._-]+" "$dir/examples"
  done | sed -E 's|.*alpine:|docker.io/library/alpine:|' | sort -u
}

images() {
  local ctx=$IMAGES/context
  rm -rf "$ctx"
  mkdir -p "$ctx/pause" "$ctx/busybox/bin" "$ctx/httpd/bin" "$ctx/httpd/www"
  # The pod sandbox, as Kubernetes builds it (hack/install-tools.sh compiles pause.c).
  cp "$KAR_PAUSE" "$ctx/pause/pause"
  image "$PAUSE_IMAGE" "$ctx/pause" $'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]'
  # busybox from Debian's busybox-static, with a link per applet, as the busybox image has.
  local a
  cp /bin/busybox "$ctx/busybox/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$ctx/busybox/bin/$a"; done
  mkdir -p "$ctx/busybox/tmp"
  chmod 1777 "$ctx/busybox/tmp"
  image "$BUSYBOX_IMAGE" "$ctx/busybox" $'FROM scratch\nCOPY . /\nENV PATH=/bin\nCMD ["sh"]'
  for a in "${BUSYBOX_ALIASES[@]}" $(argo_example_alpine_images); do
    ctr_ images tag --force "$BUSYBOX_IMAGE" "$a" >/dev/null
  done
  # A small HTTP server for charts whose Deployments need a real readiness probe: busybox httpd
  # on port 8080, serving /www, as a non-root user.
  cp /bin/busybox "$ctx/httpd/bin/busybox"
  echo ok >"$ctx/httpd/www/index.html"
  image "$HTTPD_IMAGE" "$ctx/httpd" $'FROM scratch\nCOPY . /\nUSER 65532:65532\nENTRYPOINT ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]'
  # Argo's executor and controller: the Argo in use, and the other major where it is built (so
  # that `hack/cluster.sh argo` can switch without a rebuild).
  argo_images "$KAR_ARGO_VERSION"
  local v
  for v in "$KAR_ARGO4_VERSION" "$KAR_ARGO3_VERSION"; do
    [[ $v == "$KAR_ARGO_VERSION" || ! -x $KBIN/argoexec-$v ]] || argo_images "$v"
  done
  peer_images
  runner_images
}

# argo_images VERSION: Argo's executor and controller images at VERSION, from the binaries
# hack/install-tools.sh built from its module.
argo_images() {
  local v=$1 ctx=$IMAGES/context
  [[ -x $KBIN/argoexec-$v && -x $KBIN/workflow-controller-$v ]] ||
    die "Argo $v is not built: hack/install-tools.sh"
  rm -rf "$ctx/argoexec" "$ctx/workflow-controller"
  mkdir -p "$ctx/argoexec/bin" "$ctx/workflow-controller/bin"
  cp "$KBIN/argoexec-$v" "$ctx/argoexec/bin/argoexec"
  image "quay.io/argoproj/argoexec:$v" "$ctx/argoexec" \
    $'FROM scratch\nCOPY . /\nENV PATH=/bin\nENTRYPOINT ["/bin/argoexec"]'
  cp "$KBIN/workflow-controller-$v" "$ctx/workflow-controller/bin/workflow-controller"
  image "quay.io/argoproj/workflow-controller:$v" "$ctx/workflow-controller" \
    $'FROM scratch\nCOPY . /\nENV PATH=/bin\nUSER 8737\nENTRYPOINT ["/bin/workflow-controller"]'
}

# The Argo CLI, when hack/install-tools.sh --peers built it: the benchmark runs
# `argo submit --wait` as Jobs beside argo-runner's (hack/bench.sh --cluster).
peer_images() {
  [[ -x ${KAR_ARGO_CLI:-} ]] || return 0
  local ctx=$IMAGES/context
  rm -rf "$ctx/argocli"
  mkdir -p "$ctx/argocli/bin" "$ctx/argocli/tmp"
  chmod 1777 "$ctx/argocli/tmp"
  cp "$KAR_ARGO_CLI" "$ctx/argocli/bin/argo"
  image "quay.io/argoproj/argocli:$KAR_ARGO_CLI_VERSION" "$ctx/argocli" \
    $'FROM scratch\nCOPY . /\nENV PATH=/bin HOME=/tmp\nUSER 65532:65532\nENTRYPOINT ["/bin/argo"]'
}

# The runners' images, as hack/build-images.sh left them (docker-archive); named as deploy/ names
# them (`action-runners/<runner>:<tag>`, which containerd stores as docker.io/action-runners/...).
runner_images() {
  local r found=0
  for r in argo-runner helm-runner; do
    if [[ -f $REPO/target/images/$r.tar ]]; then
      ctr_ images import "$REPO/target/images/$r.tar" >/dev/null
      found=$((found + 1))
    fi
  done
  if ((found < 2)); then
    log "note: target/images/ lacks a runner image: run hack/build-images.sh, then hack/cluster.sh images"
  fi
}
