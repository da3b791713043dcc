#!/usr/bin/env bash
# What only hack/test.sh's later phases need, built while its first phases run: hack/test.sh
# starts this in the background at the lowest CPU priority (nice 19, so the tests it runs
# meanwhile keep the CPU) and waits for it before the phases that need it.
#
#   hack/late.sh [--peers] [--images] [--clippy]
#
# 1. hack/install-tools.sh --late [--peers]: the oldest minor's kube-apiserver, Argo 3, rustc-web's
#    arm64 standard library, Helm 4 for linux/arm64 (and the Argo CLI).
# 2. With --images: hack/build-images.sh for both platforms into target/images-all (the linux/arm64
#    binaries tests/tests/arm64_qemu.rs runs under qemu, and each runner's OCI image index); the
#    cluster runs on target/images, which the first phases built for linux/amd64 alone.
# 3. With --clippy: `cargo clippy --workspace --all-targets -- -D warnings` in a target directory
#    of its own (target/clippy: the tests' `cargo test` holds target/'s lock while it runs).
# Each step's wall time is printed as it ends (hack/lib.sh; KAR_PHASES names the file for them).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

peers=() images=false clippy=false
for a in "$@"; do
  case $a in
    --peers) peers=(--peers) ;;
    --images) images=true ;;
    --clippy) clippy=true ;;
    *) echo "late: unknown argument $a" >&2; exit 2 ;;
  esac
done

phase_start "(background) tools for the later phases"
bash hack/install-tools.sh --late "${peers[@]}"
phase_end
if $images; then
  phase_start "(background) images, amd64 + arm64"
  KAR_IMAGES_DIR=target/images-all bash hack/build-images.sh
  phase_end
fi
if $clippy; then
  phase_start "(background) clippy"
  cargo clippy --workspace --all-targets --target-dir target/clippy -- -D warnings
  phase_end
fi
