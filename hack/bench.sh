#!/usr/bin/env bash
# Benchmark our runners against the tools a user would pick instead, on one local control plane:
# argo-runner against the Argo CLI (`argo submit --wait`), helm-runner against the Helm CLI
# (`helm upgrade --install`), and both against Capact's Go runners when
# KAR_CAPACT_ARGO_RUNNER / KAR_CAPACT_HELM_RUNNER name their binaries (built by hand outside the
# repository: the Go module proxy refuses capact.io/capact; see bench/README.md).
#   hack/bench.sh [--images] [BENCH OPTIONS]   (default --out: target/bench; writes bench.md, bench.json)
# Builds the peers (hack/install-tools.sh --peers) and the release binaries, then runs the bench
# crate (bench/, `cargo run --release -p action-runner-bench`) with the other arguments; its
# options (--smoke, --out DIR, --reps R, --scale N,..., --only argo|helm, --cluster) are listed
# by `hack/bench.sh --help`. --images (this script's own): build the images first
# (hack/build-images.sh) so their sizes are reported. --debug (its own too): the debug build
# instead of the release build. --smoke: one repetition, N = 1 (run by
# .ci/run so the benchmark cannot rot; its figures mean little).
# --cluster: instead, N argo-runner Jobs and N Argo CLI Jobs at once on the real one-node cluster
# (default N: 10,50; --scale to choose), each running Argo's hello-world under Argo's real
# controller; builds the images and starts the cluster unless KAR_CLUSTER_KUBECONFIG names a
# running one, and then stops it; writes bench-cluster.md and bench-cluster.json.
# --kwok: instead, N actions at once as processes against the same cluster's control plane and
# Argo's real controller, their pods on simulated nodes (KWOK, built by hack/install-tools.sh
# --kwok): argo-runner at N = 10, 100, 1000, the Argo CLI and helm-runner at 10, 100 (--scale
# to choose); starts the cluster as --cluster does; writes bench-kwok.md and bench-kwok.json.
# Not part of the test suite: figures are never asserted. Dated results: bench/results/<date>/.
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do
  case $a in
    -h|--help)
      # Only the help: nothing to install, nothing built but the bench.
      echo "hack/bench.sh [--images] [OPTIONS]: --images builds the images first; the OPTIONS are the bench's."
      exec cargo run -q --release -p action-runner-bench -- "$a" ;;
  esac
done
args=()
cluster=false
tools=--peers
profile=(--release)
for a in "$@"; do
  case $a in
    --images) bash hack/build-images.sh ;;
    # This script's own: the debug build the tests use (no release build; for the smoke run of
    # .ci/run, whose figures mean little anyway).
    --debug) profile=() ;;
    --cluster) cluster=true; args+=("$a") ;;
    --kwok) cluster=true; tools=--kwok; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
bash hack/install-tools.sh "$tools"
eval "$(bash hack/install-tools.sh --print)"
cargo build "${profile[@]}" --bins
if $cluster && [[ -z ${KAR_CLUSTER_KUBECONFIG:-} ]]; then
  bash hack/build-images.sh
  trap 'bash hack/cluster.sh down' EXIT
  eval "$(bash hack/cluster.sh up)"
  bash hack/cluster.sh images
fi
cargo run -q "${profile[@]}" -p action-runner-bench -- "${args[@]}"
