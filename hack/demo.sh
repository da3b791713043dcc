#!/usr/bin/env bash
# The main job on a local control plane: builds the pinned tools (first time only) and the
# runners, then runs argo-runner on Argo's hello-world example against a real kube-apiserver.
#   hack/demo.sh [EXAMPLE] [--fail]
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-tools.sh
cargo build --bins
exec cargo run -q -p action-runner-tests --bin demo -- "$@"
