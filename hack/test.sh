#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the integration and end-to-end tests on a
# local control plane (etcd + kube-apiserver built by hack/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-tools.sh
eval "$(bash hack/install-tools.sh --print)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --bins
cargo test --workspace
