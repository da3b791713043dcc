#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the integration and end-to-end tests on a
# local control plane (etcd + kube-apiserver built by hack/install-tools.sh). Ends with one
# summary line, `summary: N passed, N failed`, added up over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-tools.sh
eval "$(bash hack/install-tools.sh --print)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
