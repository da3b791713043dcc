# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are read by the other parts
# The local cluster's settings, and the helpers every part uses: logging, the tools, the clients,
# starting, stopping and waiting for a host process (sourced by hack/cluster.sh).

# The control plane's certificates, flags and Service range (SERVICE_CIDR, SERVICE_IP): one owner
# for this cluster and the tests' bare API server.
source hack/control-plane.sh

REPO=$PWD # hack/cluster.sh runs from the repository's root
CACHE=${KAR_CACHE:-$HOME/.cache/kube-action-runners}
S=${KAR_CLUSTER_DIR:-$CACHE/cluster}
IMAGES=$CACHE/images
BRIDGE=kar0
NODE_IP=10.88.0.1
POD_CIDR=10.88.0.0/24
NODE_NAME=kar-node
APISERVER_PORT=6443
ETCD_CLIENT=127.0.0.1:12379
ETCD_PEER=127.0.0.1:12380
PAUSE_IMAGE=registry.k8s.io/pause:3.10.2 # Kubernetes 1.37's tag for build/pause (hack/install-tools.sh)
BUSYBOX_IMAGE=docker.io/library/busybox:latest
# deploy/ names this; the busybox image stands in for it, and for every alpine tag Argo's examples
# name (argo_example_alpine_images).
BUSYBOX_ALIASES=(docker.io/library/busybox:1.36)
HTTPD_IMAGE=localhost/kar/httpd:1
ARGO_NAMESPACE=argo

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

tools_env() {
  eval "$(bash hack/install-tools.sh --print)"
  KV=$KAR_KUBERNETES_VERSION
  KBIN=$KAR_KUBE_BIN_DIR
}

admin() { "$KAR_KUBECTL" --kubeconfig "$S/admin.kubeconfig" --request-timeout=20s "$@"; }
ctr_() { ctr --address "$S/containerd/containerd.sock" -n k8s.io "$@"; }

print_env() {
  echo "export KUBECONFIG=$S/admin.kubeconfig"
  echo "export KAR_CLUSTER_KUBECONFIG=$S/admin.kubeconfig"
  echo "export KAR_CLUSTER_DIR=$S"
  echo "export KAR_CLUSTER_ARGO_NAMESPACE=$ARGO_NAMESPACE"
  echo "export KAR_CLUSTER_BUSYBOX_IMAGE=$BUSYBOX_IMAGE"
  echo "export KAR_CLUSTER_HTTPD_IMAGE=$HTTPD_IMAGE"
  # Argo's default artifact repository, when `up` started it (hack/cluster/artifacts.sh): its
  # directory (credentials.env, and data/<bucket>/<key> as stored), bucket, and the Secret's name
  # that each Workflow's namespace needs.
  if artifacts_running; then
    echo "export KAR_CLUSTER_ARTIFACTS_DIR=$ARTIFACTS_DIR"
    echo "export KAR_CLUSTER_ARTIFACTS_BUCKET=$ARTIFACTS_BUCKET KAR_CLUSTER_ARTIFACTS_SECRET=$ARTIFACTS_SECRET"
  fi
  # The pinned kubectl (hack/install-tools.sh), first on PATH.
  echo "export PATH=$S/bin:\$PATH"
}

# spawn NAME COMMAND...: starts COMMAND in the background, logs in logs/NAME.log, pid in run/NAME.pid,
# the command line in run/NAME.cmd.
spawn() {
  local n=$1
  shift
  mkdir -p "$S/run" "$S/logs"
  # The command line, for `fault` (hack/cluster/faults.sh) to start it again as it was.
  printf '%s\0' "$@" >"$S/run/$n.cmd"
  PATH=/usr/sbin:/usr/bin:/sbin:/bin nohup "$@" >"$S/logs/$n.log" 2>&1 &
  echo $! >"$S/run/$n.pid"
}

# stop NAME: the process whose pid is in run/NAME.pid, TERM then KILL after 10 s.
stop() {
  local n=$1 p
  p=$(cat "$S/run/$n.pid" 2>/dev/null) || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    log "stopped $n ($p)"
  fi
  rm -f "$S/run/$n.pid"
}

# wait_for WHAT SECONDS PROCESS COMMAND...: until COMMAND succeeds; fails with the log's tail if
# PROCESS (a run/*.pid name) died or SECONDS passed.
wait_for() {
  local what=$1 secs=$2 proc=$3
  shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $proc ]] && ! kill -0 "$(cat "$S/run/$proc.pid")" 2>/dev/null; then
      tail -20 "$S/logs/$proc.log" >&2
      die "$proc died while waiting for $what (log: $S/logs/$proc.log)"
    fi
    ((SECONDS < deadline)) || {
      [[ -n $proc ]] && tail -20 "$S/logs/$proc.log" >&2
      die "timed out after $secs s waiting for $what"
    }
    sleep 0.2
  done
}
