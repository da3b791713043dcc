#!/usr/bin/env bash
# The main job, on the real local cluster: the argo-runner image runs as the Job in
# deploy/argo-runner, applied as it ships; Argo's real workflow-controller runs Argo's
# hello-world example, whose step's pod really runs. Prints the step's own output (its pod's
# log), the Job's status and the status ConfigMap, then tears the cluster down (KEEP=1 keeps it,
# and prints how to stop it). Each phase's time is printed as it goes: the first run builds
# Kubernetes, etcd, helm and Argo from their Go modules (about 15 minutes on 2 cores).
#
# On a fresh machine it installs first (as root on Linux, hack/install-tools.sh installs the
# Debian packages the cluster needs), then starts the cluster. Only where no cluster can start
# (not Linux, or not root, or what it needs is missing and cannot be installed:
# `hack/cluster.sh can-start`), it says why in one line and runs the earlier demo instead:
# argo-runner on the same example against a bare kube-apiserver, with the controller played by
# the demo (`hack/demo.sh --bare [EXAMPLE] [--fail]` runs that one directly).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

bare() {
  bash hack/install-tools.sh
  cargo build --bins
  exec cargo run -q -p action-runner-tests --bin demo -- "$@"
}

if [[ ${1:-} == --bare ]]; then
  shift
  bare "$@"
fi
# Asked before installing anything: whether a cluster could start here once installed.
if ! why=$(bash hack/cluster.sh can-start); then
  echo "demo: no local cluster can start here: $why; running the bare API server demo instead" >&2
  bare "$@"
fi

NS=demo
phase_start "tools (first run: Go builds, Debian packages)"
bash hack/install-tools.sh
eval "$(bash hack/install-tools.sh --print)"
phase_end
# Now that everything is installed: what installing cannot change (a kernel without the memory
# cgroup, ...).
if ! why=$(bash hack/cluster.sh check 2>/dev/null); then
  echo "demo: no local cluster can start here, even with the tools installed: $why; running the bare API server demo instead" >&2
  bare "$@"
fi
phase_start "runner images"
bash hack/build-images.sh >/dev/null
phase_end
phase_start "cluster up"
eval "$(bash hack/cluster.sh up)"
if [[ -z ${KEEP:-} ]]; then trap 'bash hack/cluster.sh down >/dev/null 2>&1' EXIT; fi
phase_end

phase_start "the hello-world Workflow, as deploy/argo-runner's Job"
kubectl create namespace "$NS" >/dev/null
# Argo's own example as the input manifest: the ConfigMap deploy/ ships, with
# examples/hello-world.yaml from the pinned Argo module in place of its manifest.
kubectl kustomize deploy/argo-runner |
  KAR_EXAMPLE=$KAR_ARGO_DIR/examples/hello-world.yaml awk '
    /^  manifest.yaml: \|$/ { print; while ((getline l < ENVIRON["KAR_EXAMPLE"]) > 0) print "    " l; skip = 1; next }
    skip && /^[^ ]/ { skip = 0 }
    !skip' |
  kubectl apply -n "$NS" -f - >/dev/null
kubectl -n "$NS" wait job/argo-runner-hello-world --for=condition=Complete --timeout=300s >/dev/null || {
  kubectl -n "$NS" describe job/argo-runner-hello-world >&2
  kubectl -n "$NS" logs job/argo-runner-hello-world >&2 || true
  exit 1
}
phase_end

echo
echo "--- what the Workflow's step printed (its pod's log):"
# (Argo's executor adds lines of its own, marked argo=true.)
kubectl -n "$NS" logs -l workflows.argoproj.io/workflow=hello-world -c main | grep -v 'argo=true'
echo "--- the Job:"
kubectl -n "$NS" get job/argo-runner-hello-world \
  -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}succeeded={.status.succeeded} started={.status.startTime} completed={.status.completionTime}{"\n"}'
echo "--- the Workflow (owned by the Job):"
kubectl -n "$NS" get workflow/hello-world \
  -o jsonpath='phase={.status.phase} progress={.status.progress} owner={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}'
echo "--- the status ConfigMap hello-world:"
kubectl -n "$NS" get configmap/hello-world -o jsonpath='{.data.status}'
echo
echo "--- the runner's log:"
kubectl -n "$NS" logs job/argo-runner-hello-world
echo
phase_report
if [[ -n ${KEEP:-} ]]; then
  bash hack/cluster.sh env
  echo "# the cluster is still up (KEEP=1): stop it with hack/cluster.sh down"
fi
