#!/usr/bin/env bash
# End to end on a real cluster, for users with Docker: creates a kind cluster, builds and loads
# the images, installs Argo Workflows, applies deploy/ and runs both Jobs, then asserts they
# completed with the expected status, using the same assertions as the local tests
# (tests/tests/rbac_e2e.rs, `kind_jobs_completed_with_the_expected_status`).
#
#   hack/kind-e2e.sh            # needs docker, kind, kubectl, Go, Rust; network access
#   KEEP_CLUSTER=1 hack/kind-e2e.sh
#
# NOT RUN IN CI: the CI machine has no Docker engine. See the README.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KAR_KIND_CLUSTER:-action-runners}
NS=${KAR_KIND_NAMESPACE:-action-runners}
# The default Argo, as hack/install-tools.sh pins it (ARGO4_VERSION), unless KAR_ARGO_VERSION says.
ARGO_VERSION=${KAR_ARGO_VERSION:-$(sed -n 's/^ARGO4_VERSION=\(v[0-9.]*\).*/\1/p' hack/install-tools.sh)}
TIMEOUT=${KAR_KIND_TIMEOUT:-600s}

log() { echo "kind-e2e: $*" >&2; }
for tool in docker kind kubectl cargo go; do
  command -v "$tool" >/dev/null || { log "error: $tool is required"; exit 1; }
done
docker info >/dev/null 2>&1 || { log "error: no running Docker engine"; exit 1; }

kubeconfig=$(mktemp)
cleanup() {
  rm -f "$kubeconfig"
  if [[ -z ${KEEP_CLUSTER:-} ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --kubeconfig "$kubeconfig" --wait 120s
export KUBECONFIG=$kubeconfig

log "building the images (static binaries, FROM scratch) and loading them"
bash hack/build-images.sh --engine docker
for r in argo-runner helm-runner; do
  kind load image-archive "target/images/$r.tar" --name "$CLUSTER"
done

log "installing Argo Workflows $ARGO_VERSION (controller in namespace argo)"
kubectl create namespace argo
kubectl apply -n argo --server-side -f \
  "https://github.com/argoproj/argo-workflows/releases/download/$ARGO_VERSION/install.yaml"
kubectl -n argo rollout status deployment/workflow-controller --timeout="$TIMEOUT"

log "applying deploy/ to namespace $NS"
kubectl create namespace "$NS"
# The Jobs would start at once; apply everything else first, so that the Roles exist when the
# pods do (a Job pod retried after a 403 would still converge, but the first try should pass).
for r in argo-runner helm-runner; do
  kubectl kustomize "deploy/$r" >"target/images/$r.yaml"
  kubectl apply -n "$NS" --server-side -f <(awk 'BEGIN{RS="\n---\n"; ORS="\n---\n"} !/\nkind: Job\n/' "target/images/$r.yaml")
done
for r in argo-runner helm-runner; do
  kubectl apply -n "$NS" --server-side -f "target/images/$r.yaml"
done

log "waiting for both Jobs"
for job in argo-runner-hello-world helm-runner-hello-release; do
  if ! kubectl -n "$NS" wait "job/$job" --for=condition=Complete --timeout="$TIMEOUT"; then
    kubectl -n "$NS" describe "job/$job" >&2 || true
    kubectl -n "$NS" logs "job/$job" >&2 || true
    exit 1
  fi
done

log "asserting the outcome with the local tests' assertions"
cargo build --bins
KAR_KIND_KUBECONFIG=$kubeconfig KAR_KIND_NAMESPACE=$NS \
  cargo test -p action-runner-tests --test rbac_e2e -- --ignored --exact kind_jobs_completed_with_the_expected_status
log "ok: both Jobs completed with the expected status"
