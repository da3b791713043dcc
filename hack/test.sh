#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the integration tests on a bare kube-apiserver
# (one per test binary, for what needs an API server of its own), and the end-to-end tests on the
# real local cluster (hack/cluster.sh: kubelet, containerd, Argo's controller), where the runner
# images run as Jobs, under Argo 4 and then, for the Argo tests, Argo 3, and the linux/arm64
# images' binaries under qemu-user (tests/tests/arm64_qemu.rs). The cluster and the tests run
# Kubernetes' newest pinned minor; the bare-API-server tests run again on the oldest minor
# k8s-openapi covers. Sets everything up first (hack/install-tools.sh --early, hack/build-images.sh
# for amd64) and tears the cluster down at the end; what only the later phases need (the oldest
# minor's API server, Argo 3, the arm64 images) is built meanwhile in the background at nice 19
# (hack/late.sh), and waited for after the fault tests. Prints each phase's wall time, and ends with one summary
# line, `summary: N passed, N failed, N skipped`, added up over every test binary (a binary that
# ended without its result line counts as a failure; skipped tests are not counted as passed).
#
# Where no cluster can start (not Linux, not root), the cluster tests are skipped and say so,
# and the summary counts them apart; under CI=true a cluster that cannot start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

phase_start "install tools (Go builds, Debian packages) the first phases need"
bash hack/install-tools.sh --early
eval "$(bash hack/install-tools.sh --print)"
phase_end

# Under CI the linux/arm64 images must be built (hack/install-tools.sh installs what cross-builds
# them on x86_64) and their binaries must pass tests/tests/arm64_qemu.rs, not skip it.
if [ "${CI:-}" = true ] && [ "$(uname -m)" = x86_64 ]; then
  export KAR_REQUIRE_ARM64=1
fi
# Why no cluster can start here (empty when one can): `check` says it in one line.
cluster_why=
why=$(bash hack/cluster.sh check) || cluster_why=${why:-hack/cluster.sh check failed}

# The tools and images only the later phases need (hack/late.sh: the oldest minor's API server,
# Argo 3, the arm64 images) are built in the background at nice 19 while the first phases run,
# most of which wait on the cluster rather than use the CPU. Its own process group, so that an
# early exit stops all of it.
late_args=()
[ "${KAR_PEERS:-}" != 1 ] || late_args+=(--peers)
[ -n "$cluster_why" ] || late_args+=(--images)
# clippy too: a cold run measured it at 174 s in front of everything, and the background build
# was done about 480 s before the tests needed it.
late_args+=(--clippy)
late_log=$PWD/target/late.log
mkdir -p target
export KAR_LATE_PHASES=$PWD/target/late-phases.txt
rm -f "$KAR_LATE_PHASES"
KAR_PHASES=$KAR_LATE_PHASES setsid nice -n 19 bash hack/late.sh "${late_args[@]}" >"$late_log" 2>&1 &
late_pid=$!
trap 'kill -- -$late_pid 2>/dev/null || true' EXIT
echo "test: building the later phases' tools in the background (pid $late_pid, log $late_log)" >&2

# wait_late: waits for hack/late.sh; its phase times join this run's; on failure, its log's tail.
wait_late() {
  local rc=0
  wait "$late_pid" || rc=$?
  [ ! -f "$KAR_LATE_PHASES" ] || cat "$KAR_LATE_PHASES" >>"$KAR_PHASES"
  if [ "$rc" -ne 0 ]; then
    tail -30 "$late_log" >&2
    echo "test: hack/late.sh failed (exit $rc; log $late_log)" >&2
    return 1
  fi
}

phase_start "fmt (clippy runs in the background build)"
cargo fmt --all -- --check
phase_end

phase_start "cargo build (debug, tests)"
cargo build --bins
cargo test --workspace --no-run --quiet
phase_end

cluster=false
if [ -z "$cluster_why" ]; then
  phase_start "runner images for the cluster (static release build for amd64, buildah)"
  bash hack/build-images.sh --platforms linux/amd64
  phase_end
  phase_start "cluster up"
  trap 'kill -- -$late_pid 2>/dev/null || true; bash hack/cluster.sh down >/dev/null 2>&1 || true' EXIT
  eval "$(bash hack/cluster.sh up)"
  export KAR_REQUIRE_CLUSTER=1
  cluster=true
  phase_end
elif [ "${CI:-}" = true ]; then
  echo "test: no local cluster here ($cluster_why); under CI=true the cluster tests may not be skipped" >&2
  exit 1
else
  echo "test: no local cluster here ($cluster_why): the cluster tests will be skipped" >&2
fi

# A test that skips (no cluster) appends its name here; the summary counts those apart.
export KAR_SKIPPED_FILE
KAR_SKIPPED_FILE=$(mktemp)

log=$(mktemp)
status=0
phase_start "cargo test (unit, bare API server, cluster)"
# The fault tests (tests/tests/fault_e2e.rs) take the whole cluster down and up: their own phase.
# The arm64 tests (tests/tests/arm64_qemu.rs, every name holds `arm64`) wait for hack/late.sh.
cargo test --workspace --no-fail-fast -- --skip under_fault:: --skip arm64 2>&1 | tee "$log" || status=$?
phase_end

phase_start "faults on the real cluster (hack/cluster/faults.sh)"
cargo test -p action-runner-tests --no-fail-fast --test fault_e2e 2>&1 | tee -a "$log" || status=$?
phase_end

phase_start "wait for the background build (hack/late.sh)"
wait_late || status=1
phase_end

# The linux/arm64 binaries hack/late.sh built, under qemu-user.
phase_start "the linux/arm64 binaries under qemu"
KAR_ARM64_DIR=$PWD/target/images-all/context/linux-arm64 \
  cargo test -p action-runner-tests --no-fail-fast --test arm64_qemu 2>&1 | tee -a "$log" || status=$?
phase_end

# The tests that need only an API server (a bare kube-apiserver and etcd of their own) again on
# the oldest Kubernetes minor that k8s-openapi covers (hack/install-tools.sh's
# KUBERNETES_OLDEST_VERSION; the tests above ran on KUBERNETES_VERSION), so that a user at either
# end is covered. The harness checks that the API server it started is that version.
bare_api_tests=(argo_e2e helm_e2e rbac_e2e hostile_chart_e2e)
eval "$(KAR_KUBERNETES=oldest bash hack/install-tools.sh --print)"
phase_start "the bare-API-server tests again on Kubernetes $KAR_KUBE_APISERVER_VERSION"
echo "test: kube-apiserver $KAR_KUBE_APISERVER_VERSION (the tests above ran on $KAR_KUBERNETES_VERSION)" >&2
for t in "${bare_api_tests[@]}"; do
  cargo test -p action-runner-tests --no-fail-fast --test "$t" 2>&1 | tee -a "$log" || status=$?
done
eval "$(bash hack/install-tools.sh --print)"
phase_end

# Argo 3 (hack/install-tools.sh's ARGO3_VERSION) beside the default Argo 4: the Argo tests again,
# with Argo 3's CRDs and examples, and, on the cluster, under its real controller and executor.
phase_start "the Argo tests again under Argo 3"
# Exported, so that hack/cluster.sh, which reads the tools' environment afresh, installs Argo 3
# too (the tests check that the controller they find is the Argo they use).
export KAR_ARGO_MAJOR=3
eval "$(bash hack/install-tools.sh --print)"
echo "test: Argo $KAR_ARGO_VERSION (the tests above ran under Argo $KAR_ARGO4_VERSION)" >&2
argo_tests=(argo_e2e)
if $cluster; then
  bash hack/cluster.sh argo
  argo_tests+=(cluster_e2e)
fi
# cluster_e2e whole but its Helm-only tests (every one named `helm...`, none runs a Workflow),
# not only the tests whose names look like Argo's: a new test that runs Workflows cannot be left
# out.
for t in "${argo_tests[@]}"; do
  cargo test -p action-runner-tests --no-fail-fast --test "$t" -- --skip helm 2>&1 | tee -a "$log" || status=$?
done
phase_end

if $cluster; then
  phase_start "cluster down"
  bash hack/cluster.sh down
  trap - EXIT
  phase_end
fi

phase_report
# Every test binary that cargo ran ("Running ..." or "Doc-tests ...") must end with its
# "test result:" line: one that crashed (a signal, an abort) prints none, and counts as failed.
skipped=$(wc -l < "$KAR_SKIPPED_FILE")
summary=$(awk -v skipped="$skipped" '
  /^ *Running [^ ]/ || /^ *Doc-tests / { binaries++ }
  /^test result:/ { results++; for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  END {
    if (results < binaries) { printf "test: %d test binaries ended without a result line (crashed)\n", binaries - results > "/dev/stderr"; f += binaries - results }
    printf "summary: %d passed, %d failed, %d skipped\n", p - skipped, f, skipped
  }' "$log")
if ! [[ $summary =~ ", 0 failed," ]] && [ "$status" -eq 0 ]; then
  status=1
fi
rm -f "$log" "$KAR_SKIPPED_FILE"
if [ -n "${KAR_SUMMARY_FILE:-}" ]; then
  echo "$summary" > "$KAR_SUMMARY_FILE"
fi
echo "$summary"
exit "$status"
