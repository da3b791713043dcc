#!/usr/bin/env bash
# The soak (tests/tests/soak.rs): 200 actions through deploy/'s Jobs on the local cluster, with
# faults (hack/cluster/faults.sh) at moments drawn from a seeded schedule; about 15 minutes.
# Starts the cluster unless one is running (KAR_CLUSTER_KUBECONFIG set), and takes it down
# again if it started it. Its `soak:` lines (seed, faults, figures) end up in target/soak.log.
#
#   hack/soak.sh                         # a new seed (printed)
#   KAR_SOAK_SEED=42 hack/soak.sh        # replay a schedule
#   KAR_SOAK_ACTIONS=50 KAR_SOAK_PARALLEL=4 KAR_SOAK_FAULT_GAP=30 hack/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

phase_start "tools, binaries"
bash hack/install-tools.sh
eval "$(bash hack/install-tools.sh --print)"
cargo build --bins
cargo test -p action-runner-tests --test soak --no-run --quiet
phase_end

if [[ -z ${KAR_CLUSTER_KUBECONFIG:-} ]]; then
  why=$(bash hack/cluster.sh check) || { echo "soak: no local cluster can start here: $why" >&2; exit 1; }
  phase_start "images, cluster up"
  bash hack/build-images.sh
  trap 'bash hack/cluster.sh down >/dev/null 2>&1 || true' EXIT
  eval "$(bash hack/cluster.sh up)"
  phase_end
fi
export KAR_REQUIRE_CLUSTER=1

phase_start "soak"
status=0
cargo test -p action-runner-tests --test soak -- --ignored --nocapture 2>&1 | tee target/soak.log || status=$?
phase_end
phase_report
grep '^soak:' target/soak.log | tail -1
exit "$status"
