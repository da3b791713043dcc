#!/usr/bin/env bash
# Benchmark our runners against the tools a user would pick instead, on one local control plane:
# argo-runner against the Argo CLI (`argo submit --wait`), helm-runner against the Helm CLI
# (`helm upgrade --install`), and both against Capact's Go runners when
# KAR_CAPACT_ARGO_RUNNER / KAR_CAPACT_HELM_RUNNER name their binaries (built by hand outside the
# repository: the Go module proxy refuses capact.io/capact; see the README).
#   hack/bench.sh [--smoke] [--images] [--out DIR]   (default DIR: target/bench; writes bench.md, bench.json)
# --smoke: one repetition, N = 1 (run by .ci/run so the benchmark cannot rot; its figures mean
# little). --images: build the images first (hack/build-images.sh) so their sizes are reported.
# Not part of the test suite: figures are never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  case $a in
    --images) bash hack/build-images.sh ;;
    *) args+=("$a") ;;
  esac
done
bash hack/install-tools.sh --peers
eval "$(bash hack/install-tools.sh --print)"
cargo build --release --bins
exec cargo run -q --release -p action-runner-tests --bin bench -- "${args[@]}"
