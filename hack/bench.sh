#!/usr/bin/env bash
# Benchmark argo-runner against the Argo CLI (`argo submit --wait`) on one local control plane.
#   hack/bench.sh [--smoke] [--out DIR]     (default DIR: target/bench; writes bench.md, bench.json)
# --smoke: one repetition, N = 1 (run by .ci/run so the benchmark cannot rot; its figures mean
# little). Not part of the test suite: figures are never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-tools.sh --peers
eval "$(bash hack/install-tools.sh --print)"
cargo build --release --bins
exec cargo run -q --release -p action-runner-tests --bin bench -- "$@"
