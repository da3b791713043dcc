#!/usr/bin/env bash
# Benchmark our runners against the tools a user would pick instead, on one local control plane:
# argo-runner against the Argo CLI (`argo submit --wait`), helm-runner against the Helm CLI
# (`helm upgrade --install`), and both against Capact's Go runners when
# KAR_CAPACT_ARGO_RUNNER / KAR_CAPACT_HELM_RUNNER name their binaries (built by hand outside the
# repository: the Go module proxy refuses capact.io/capact; see docs/benchmarks.md).
#   hack/bench.sh [--smoke] [--images] [--out DIR]   (default DIR: target/bench; writes bench.md, bench.json)
# --smoke: one repetition, N = 1 (run by .ci/run so the benchmark cannot rot; its figures mean
# little). --images: build the images first (hack/build-images.sh) so their sizes are reported.
# --cluster: instead, N argo-runner Jobs and N Argo CLI Jobs at once on the real one-node cluster
# (default N: 10,50; --scale to choose), each running Argo's hello-world under Argo's real
# controller; builds the images and starts the cluster unless KAR_CLUSTER_KUBECONFIG names a
# running one, and then stops it; writes bench-cluster.md and bench-cluster.json.
# Not part of the test suite: figures are never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
cluster=false
for a in "$@"; do
  case $a in
    --images) bash hack/build-images.sh ;;
    --cluster) cluster=true; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
bash hack/install-tools.sh --peers
eval "$(bash hack/install-tools.sh --print)"
cargo build --release --bins
if $cluster && [[ -z ${KAR_CLUSTER_KUBECONFIG:-} ]]; then
  bash hack/build-images.sh
  trap 'bash hack/cluster.sh down' EXIT
  eval "$(bash hack/cluster.sh up)"
  bash hack/cluster.sh images
fi
cargo run -q --release -p action-runner-bench -- "${args[@]}"
