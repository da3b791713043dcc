#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine: etcd, kube-apiserver, kubelet with
# containerd and runc, kube-proxy, kube-controller-manager, kube-scheduler, and Argo's real
# workflow-controller as a pod. Every image is built here and imported into containerd; nothing
# is ever pulled. Linux, as root.
#
#   hack/cluster.sh up       # (re)start it; prints `export KUBECONFIG=...` and friends
#   hack/cluster.sh down     # stop it and undo what it did to the host
#   hack/cluster.sh env      # print the exports again (eval-able)
#   hack/cluster.sh images   # (re)import the runner images from target/images/ (hack/build-images.sh)
#   hack/cluster.sh argo     # replace the running cluster's Argo (CRDs, controller) with the Argo
#                            # in use: Argo 4, or Argo 3 with KAR_ARGO_MAJOR=3 (every Workflow goes)
#   hack/cluster.sh check    # can a cluster start here? exit 0, or 1 with the reason on one line
#   hack/cluster.sh can-start [OS UID]
#                            # could one start here once hack/install-tools.sh has run (it installs
#                            # the packages as root)? exit 0, or 1 with the reason on one line. OS
#                            # and UID default to `uname -s` and `id -u` (hack/demo.sh asks this
#                            # before installing anything)
#
# Binaries come from hack/install-tools.sh (run it first). State lives in
# ${KAR_CLUSTER_DIR:-${KAR_CACHE:-$HOME/.cache/kube-action-runners}/cluster}, never in the
# repository: pid files in run/, logs in logs/, certificates in pki/, containerd's and the
# kubelet's roots. Images built for the cluster are kept in $KAR_CACHE/images between runs.
#
# Network: the API server, kubelet and kube-proxy listen on the bridge kar0 (10.88.0.1) or on
# loopback only. Pods live in 10.88.0.0/24 on kar0 and can reach this host and each other, nothing
# else: FORWARD rules drop anything leaving or entering the bridge's range through any other
# interface, there is no masquerading, and the pods' resolv.conf names 127.0.0.1 (no upstream
# DNS; in-cluster clients use the `kubernetes` Service's ClusterIP).
#
# One cluster per machine: the ports, the bridge, the /kubepods cgroups and kube-proxy's chains
# are host-wide. Tests share it and isolate by namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CACHE=${KAR_CACHE:-$HOME/.cache/kube-action-runners}
S=${KAR_CLUSTER_DIR:-$CACHE/cluster}
IMAGES=$CACHE/images
BRIDGE=kar0
NODE_IP=10.88.0.1
POD_CIDR=10.88.0.0/24
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1 # the `kubernetes` Service: first address of SERVICE_CIDR
NODE_NAME=kar-node
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

# Phase timing: `phase NAME` closes the previous phase and prints its wall time.
T0=$(date +%s.%N)
TL=$T0
phase() {
  local now; now=$(date +%s.%N)
  awk -v n="$1" -v now="$now" -v tl="$TL" -v t0="$T0" \
    'BEGIN { printf "cluster: %-38s %6.1f s (total %6.1f s)\n", n, now - tl, now - t0 }' >&2
  TL=$now
}

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
  # The pinned kubectl (hack/install-tools.sh), first on PATH.
  echo "export PATH=$S/bin:\$PATH"
}

# The commands the cluster runs or is set up with; hack/install-tools.sh installs their Debian
# packages as root when they are missing.
HOST_COMMANDS=(containerd runc ctr buildah iptables ip openssl)

# can_start OS UID: one line saying why no cluster could start on a machine whose `uname -s` is OS
# and whose user id is UID, even once hack/install-tools.sh has run, or nothing. The commands the
# cluster needs may be missing: as root on Linux, hack/install-tools.sh installs them with
# apt-get; only without apt-get must they be there already (looked up on PATH).
can_start() {
  [[ $1 == Linux ]] || { echo "not Linux"; return 1; }
  [[ $2 == 0 ]] || { echo "not root (the kubelet, containerd and the bridge need root)"; return 1; }
  command -v apt-get >/dev/null && return 0
  local t
  for t in "${HOST_COMMANDS[@]}"; do
    command -v "$t" >/dev/null ||
      { echo "$t is missing and cannot be installed here (hack/install-tools.sh installs Debian packages with apt-get)"; return 1; }
  done
}

# check: one line saying why no cluster can start here, or nothing.
check() {
  can_start "$(uname -s)" "$(id -u)" || return 1
  local t
  for t in "${HOST_COMMANDS[@]}"; do
    command -v "$t" >/dev/null || { echo "$t is missing (hack/install-tools.sh installs it as root)"; return 1; }
  done
  tools_env
  local b
  for b in "$KAR_KUBECTL" "$KBIN/kubelet-$KV" "$KAR_PAUSE" \
    "$KBIN/workflow-controller-$KAR_ARGO4_VERSION" "$KBIN/argoexec-$KAR_ARGO4_VERSION" \
    "$KBIN/workflow-controller-$KAR_ARGO3_VERSION" "$KBIN/argoexec-$KAR_ARGO3_VERSION"; do
    [[ -x $b ]] || { echo "$b is missing (run hack/install-tools.sh)"; return 1; }
  done
  [[ -x /usr/lib/cni/bridge ]] || { echo "the CNI plugins are missing (Debian's containernetworking-plugins)"; return 1; }
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || { echo "no memory cgroup"; return 1; }
  return 0
}

# ---------------------------------------------------------------------------------------------
# Stopping.

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

down() {
  [[ -d $S ]] || return 0
  tools_env
  # 1. The control loops first, so that nothing restarts what is being stopped. The pods are
  #    not deleted through the API (slow, and the cluster's data goes anyway): their
  #    containers, network namespaces, mounts and cgroups are removed below.
  stop kube-scheduler
  stop kube-controller-manager
  stop kubelet
  # 2. The containers, through containerd.
  if [[ -S $S/containerd/containerd.sock ]] && ctr_ version >/dev/null 2>&1; then
    local t c
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$t" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # Containers and shims that outlived containerd (it died): found through runc's and
  # containerd's own state under $S, so only what this cluster started is touched.
  local st id pidfile
  for st in "$S"/containerd/runc/k8s.io/*/state.json; do
    [[ -f $st ]] || continue
    id=$(basename "$(dirname "$st")")
    runc --root "$S/containerd/runc/k8s.io" kill "$id" KILL >/dev/null 2>&1 || true
    runc --root "$S/containerd/runc/k8s.io" delete -f "$id" >/dev/null 2>&1 || true
  done
  for pidfile in "$S"/containerd/state/io.containerd.runtime.v2.task/k8s.io/*/shim.pid; do
    [[ -f $pidfile ]] || continue
    kill "$(cat "$pidfile")" 2>/dev/null && log "stopped shim $(cat "$pidfile")"
    rm -f "$pidfile"
  done
  # 3. Pod network namespaces this node's CNI made, found through libcni's result cache: the
  #    files of this cluster's network (kar-<sandbox id>-eth0) name them; the loopback plugin's
  #    file for the same sandbox goes too.
  local f id ns
  for f in /var/lib/cni/results/kar-*; do
    [[ -f $f ]] || continue
    id=$(grep -o '"containerId":"[0-9a-f]*"' "$f" | head -1 | cut -d'"' -f4)
    for ns in $(grep -o '"sandbox":"[^"]*"' "$f" | cut -d'"' -f4 | sort -u); do
      if [[ $ns == /var/run/netns/cni-* || $ns == /run/netns/cni-* ]]; then
        ip netns delete "$(basename "$ns")" 2>/dev/null && log "deleted netns $(basename "$ns")"
      fi
    done
    rm -f "$f"
    [[ -n $id ]] && rm -f /var/lib/cni/results/cni-loopback-"$id"-lo
  done
  # 4. kube-proxy and its rules, then the control plane.
  stop kube-proxy
  if [[ -x $KBIN/kube-proxy-$KV ]]; then "$KBIN/kube-proxy-$KV" --cleanup >/dev/null 2>&1 || true; fi
  stop kube-apiserver
  stop etcd
  # 5. Mounts under the state directory (the kubelet's root, pod volumes, rootfs, shm), deepest first.
  local m
  awk -v s="$S/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # 6. cgroups the kubelet made (cgroupfs driver), deepest first.
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $h ]] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  # 7. The kubelet's own iptables chains (kube-proxy --cleanup leaves them).
  local ipt tc
  for ipt in iptables ip6tables; do
    $ipt -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    for tc in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY \
      mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
      $ipt -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null && $ipt -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
    done
  done
  # 8. The bridge, the FORWARD rules that fence it, ip_forward as it was.
  iptables -D FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null || true
  iptables -D FORWARD -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null && log "deleted bridge $BRIDGE"
  if [[ -f $S/run/ip_forward.orig ]]; then
    cat "$S/run/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
    rm -f "$S/run/ip_forward.orig"
  fi
  # 9. What the node writes outside the state directory whatever its configuration (containerd
  #    1.6, the kubelet, libcni), removed only where nothing else is left in it.
  find /var/log/containers /var/log/pods -maxdepth 1 -lname "$S/*" -delete 2>/dev/null || true
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
    /var/log/containers 2>/dev/null || true
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd/fifo \
    /run/containerd/io.containerd.runtime.v2.task/k8s.io /run/containerd/io.containerd.runtime.v2.task \
    /run/containerd 2>/dev/null || true
  # 10. This cluster's data: a new `up` starts from an empty etcd and node. containerd's image
  #     store is kept (it only holds images this script imported).
  rm -rf "$S/etcd" "$S/kubelet" "$S/containerd/state" "$S/containerd/runc" "$S/cni" "$S/run" "$S/pki" \
    "$S/bin"
  rm -f "$S"/*.kubeconfig
  log "down"
}

# ---------------------------------------------------------------------------------------------
# Starting.

pki() {
  local P=$S/pki
  mkdir -p "$P"
  (
    cd "$P"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
      -days 7 -subj /CN=kar-cluster-ca 2>/dev/null
    # kube-apiserver's serving certificate: every name and address its clients use.
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver.key \
      -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -out apiserver.crt -extfile <(printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' "$NODE_IP" "$SERVICE_IP") 2>/dev/null
    # The client certificate kube-apiserver shows the kubelet (logs, exec).
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver-kubelet-client.key \
      -out apiserver-kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in apiserver-kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -out apiserver-kubelet-client.crt -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
    # ServiceAccount token signing key.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr
  )
  # Static tokens (token,user,uid,"groups"), random per cluster, one per component.
  : >"$P/tokens.csv"
  chmod 600 "$P/tokens.csv"
  local line name user groups token
  for line in "admin|kar-admin|system:masters" "kubelet|system:node:$NODE_NAME|system:nodes" \
    "kube-controller-manager|system:kube-controller-manager|" \
    "kube-scheduler|system:kube-scheduler|" "kube-proxy|system:kube-proxy|"; do
    IFS='|' read -r name user groups <<<"$line"
    token=$(openssl rand -hex 24)
    echo "$token,$user,$user${groups:+,\"$groups\"}" >>"$P/tokens.csv"
    kubeconfig "$S/$name.kubeconfig" "$token"
  done
}

# kubeconfig FILE TOKEN
kubeconfig() {
  cat >"$1" <<K
apiVersion: v1
kind: Config
clusters:
- name: kar
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$S/pki/ca.crt"}
users:
- name: kar
  user: {token: "$2"}
contexts:
- name: kar
  context: {cluster: kar, user: kar}
current-context: kar
K
  chmod 600 "$1"
}

network() {
  mkdir -p "$S/run" "$S/cni/net.d" "$S/cni/ipam"
  # The CNI bridge plugin (isGateway) turns ip_forward on; `down` restores it.
  [[ -f $S/run/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$S/run/ip_forward.orig"
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pod traffic never leaves the machine: nothing from or to the pod range is forwarded through
  # any interface but the bridge.
  iptables -C FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
  iptables -C FORWARD -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP
  cat >"$S/cni/net.d/10-kar.conflist" <<J
{
  "cniVersion": "1.0.0",
  "name": "kar",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$S/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
J
}

# spawn NAME COMMAND...: starts COMMAND in the background, logs in logs/NAME.log, pid in run/NAME.pid.
spawn() {
  local n=$1
  shift
  mkdir -p "$S/run" "$S/logs"
  PATH=/usr/sbin:/usr/bin:/sbin:/bin nohup "$@" >"$S/logs/$n.log" 2>&1 &
  echo $! >"$S/run/$n.pid"
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

start_containerd() {
  mkdir -p "$S/containerd"
  cat >"$S/containerd/config.toml" <<T
# containerd 1.6 (Debian): everything under $S.
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
oom_score = 0
[grpc]
  address = "$S/containerd/containerd.sock"
[ttrpc]
  address = "$S/containerd/containerd.sock.ttrpc"
[debug]
  address = "$S/containerd/debug.sock"
  level = "info"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$S/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    enable_selinux = false
    # No process here may lower its oom_score_adj (the VM's bounding set lacks
    # CAP_SYS_RESOURCE), so runc fails on the sandbox's -998 unless containerd clamps the
    # scores to its own.
    restrict_oom_score_adj = true
    max_container_log_line_size = 16384
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "$S/containerd/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$S/cni/net.d"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
T
  spawn containerd containerd --config "$S/containerd/config.toml"
  wait_for containerd 30 containerd ctr_ version
}

# image NAME CONTEXT_DIR CONTAINERFILE_TEXT: builds NAME with buildah (vfs, chroot isolation, no
# Docker engine) into an OCI archive in $IMAGES named after NAME and a digest of the context and
# the Containerfile (so it is rebuilt only when they change), and imports it into containerd
# under its full name.
image() {
  local name=$1 ctx=$2 file=$3 digest
  echo "$file" >"$ctx/Containerfile"
  digest=$(cd "$ctx" && {
    find . \( -type f -o -type l \) -printf '%p %l %m\n' | sort
    find . -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16)
  local base
  base=$IMAGES/$(echo "$name" | tr '/:' '__')
  local archive=$base.$digest.oci.tar
  mkdir -p "$IMAGES"
  if [[ ! -f $archive ]]; then
    local b=(buildah --root "$IMAGES/buildah/storage" --runroot "$IMAGES/buildah/run" --storage-driver vfs)
    "${b[@]}" build --isolation chroot --layers=false -q -t "$name" -f "$ctx/Containerfile" "$ctx" >/dev/null
    rm -f "$base".*.oci.tar
    "${b[@]}" push -q "$name" "oci-archive:$archive.tmp:$name" >/dev/null
    "${b[@]}" rmi "$name" >/dev/null 2>&1 || true
    mv "$archive.tmp" "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
}

# Every `alpine:<tag>` image the examples of either Argo major name (Argo 3.7's alpine:3.6 to 3.8,
# Argo 4.1's alpine:3.23, both alpine:latest), read from the modules hack/install-tools.sh fetched,
# one a line: the busybox image stands in for them all (the examples run `sh -c` and `echo`), so an
# Argo upgrade that moves its examples to a new tag cannot leave their pods in ImagePullBackOff
# (nothing can be pulled here).
argo_example_alpine_images() {
  local major dir
  for major in 4 3; do
    dir=$(KAR_ARGO_MAJOR=$major bash hack/install-tools.sh --print | sed -n 's/^export KAR_ARGO_DIR=//p')
    grep -rhoE "image: *['\"]?alpine:[A-Za-z0-9._-]+" "$dir/examples"
  done | sed -E 's|.*alpine:|docker.io/library/alpine:|' | sort -u
}

images() {
  local ctx=$IMAGES/context
  rm -rf "$ctx"
  mkdir -p "$ctx/pause" "$ctx/busybox/bin" "$ctx/httpd/bin" "$ctx/httpd/www" "$ctx/argoexec/bin" \
    "$ctx/workflow-controller/bin"
  # The pod sandbox, as Kubernetes builds it (hack/install-tools.sh compiles pause.c).
  cp "$KAR_PAUSE" "$ctx/pause/pause"
  image "$PAUSE_IMAGE" "$ctx/pause" $'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]'
  # busybox from Debian's busybox-static, with a link per applet, as the busybox image has.
  local a
  cp /bin/busybox "$ctx/busybox/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$ctx/busybox/bin/$a"; done
  mkdir -p "$ctx/busybox/tmp"
  chmod 1777 "$ctx/busybox/tmp"
  image "$BUSYBOX_IMAGE" "$ctx/busybox" $'FROM scratch\nCOPY . /\nENV PATH=/bin\nCMD ["sh"]'
  for a in "${BUSYBOX_ALIASES[@]}" $(argo_example_alpine_images); do
    ctr_ images tag --force "$BUSYBOX_IMAGE" "$a" >/dev/null
  done
  # A small HTTP server for charts whose Deployments need a real readiness probe: busybox httpd
  # on port 8080, serving /www, as a non-root user.
  cp /bin/busybox "$ctx/httpd/bin/busybox"
  echo ok >"$ctx/httpd/www/index.html"
  image "$HTTPD_IMAGE" "$ctx/httpd" $'FROM scratch\nCOPY . /\nUSER 65532:65532\nENTRYPOINT ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]'
  # Argo's executor and controller, each major from the module hack/install-tools.sh built it
  # from (both, so that `hack/cluster.sh argo` can switch without a rebuild).
  local v
  for v in "$KAR_ARGO4_VERSION" "$KAR_ARGO3_VERSION"; do
    cp "$KBIN/argoexec-$v" "$ctx/argoexec/bin/argoexec"
    image "quay.io/argoproj/argoexec:$v" "$ctx/argoexec" \
      $'FROM scratch\nCOPY . /\nENV PATH=/bin\nENTRYPOINT ["/bin/argoexec"]'
    cp "$KBIN/workflow-controller-$v" "$ctx/workflow-controller/bin/workflow-controller"
    image "quay.io/argoproj/workflow-controller:$v" "$ctx/workflow-controller" \
      $'FROM scratch\nCOPY . /\nENV PATH=/bin\nUSER 8737\nENTRYPOINT ["/bin/workflow-controller"]'
  done
  peer_images
  runner_images
}

# The Argo CLI, when hack/install-tools.sh --peers built it: the benchmark runs
# `argo submit --wait` as Jobs beside argo-runner's (hack/bench.sh --cluster).
peer_images() {
  [[ -x ${KAR_ARGO_CLI:-} ]] || return 0
  local ctx=$IMAGES/context
  rm -rf "$ctx/argocli"
  mkdir -p "$ctx/argocli/bin" "$ctx/argocli/tmp"
  chmod 1777 "$ctx/argocli/tmp"
  cp "$KAR_ARGO_CLI" "$ctx/argocli/bin/argo"
  image "quay.io/argoproj/argocli:$KAR_ARGO_CLI_VERSION" "$ctx/argocli" \
    $'FROM scratch\nCOPY . /\nENV PATH=/bin HOME=/tmp\nUSER 65532:65532\nENTRYPOINT ["/bin/argo"]'
}

# The runners' images, as hack/build-images.sh left them (docker-archive); named as deploy/ names
# them (`action-runners/<runner>:<tag>`, which containerd stores as docker.io/action-runners/...).
runner_images() {
  local r found=0
  for r in argo-runner helm-runner; do
    if [[ -f $REPO/target/images/$r.tar ]]; then
      ctr_ images import "$REPO/target/images/$r.tar" >/dev/null
      found=$((found + 1))
    fi
  done
  if ((found < 2)); then
    log "note: target/images/ lacks a runner image: run hack/build-images.sh, then hack/cluster.sh images"
  fi
}

start_control_plane() {
  local P=$S/pki
  spawn etcd "$KAR_ETCD" --data-dir "$S/etcd" --name kar \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "kar=http://$ETCD_PEER" --listen-metrics-urls "" \
    --unsafe-no-fsync --log-level error
  cat >"$S/audit-policy.yaml" <<A
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
A
  spawn kube-apiserver "$KBIN/kube-apiserver-$KV" \
    --etcd-servers="http://$ETCD_CLIENT" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --audit-log-path="$S/logs/audit.log" --audit-policy-file="$S/audit-policy.yaml" \
    --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    --v=0
  wait_for "kube-apiserver /readyz" 90 kube-apiserver admin get --raw /readyz
}

start_kubelet() {
  mkdir -p "$S/kubelet/root" "$S/kubelet/pki" "$S/kubelet/pod-logs"
  echo "nameserver 127.0.0.1" >"$S/kubelet/resolv.conf"
  cat >"$S/kubelet/config.yaml" <<Y
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Serve on the node address (the bridge's gateway), never on the machine's own interfaces.
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# Only kube-apiserver (a client certificate from this cluster's CA) may call the kubelet.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$S/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$S/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
podLogsDir: $S/kubelet/pod-logs
resolvConf: $S/kubelet/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
# The disk is shared with other work: never evict or garbage-collect for disk pressure.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
Y
  spawn kubelet "$KBIN/kubelet-$KV" --config="$S/kubelet/config.yaml" \
    --kubeconfig="$S/kubelet.kubeconfig" --root-dir="$S/kubelet/root" --cert-dir="$S/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  wait_for "node $NODE_NAME Ready" 90 kubelet node_ready
}

node_ready() {
  [[ $(admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

start_controllers() {
  local P=$S/pki
  mkdir -p "$S/kube-proxy"
  cat >"$S/kube-proxy/config.yaml" <<Y
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$S/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, masqueradeAll: false}
# Leave the kernel's conntrack sizing alone.
conntrack: {maxPerCore: 0, min: 0}
Y
  spawn kube-proxy "$KBIN/kube-proxy-$KV" --config="$S/kube-proxy/config.yaml" --v=1
  # --use-service-account-credentials: each controller acts as its own ServiceAccount; without
  # it the controllers here fail RBAC and kube-root-ca.crt never appears.
  spawn kube-controller-manager "$KBIN/kube-controller-manager-$KV" \
    --kubeconfig="$S/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$S/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$S/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --root-ca-file="$P/ca.crt" --service-account-private-key-file="$P/sa.key" \
    --use-service-account-credentials=true --leader-elect=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --v=1
  spawn kube-scheduler "$KBIN/kube-scheduler-$KV" --kubeconfig="$S/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$S/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$S/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --v=1
  wait_for "the default ServiceAccount and kube-root-ca.crt" 90 kube-controller-manager \
    admin -n default get serviceaccount/default configmap/kube-root-ca.crt
  wait_for "kube-proxy's rule for the kubernetes Service" 60 kube-proxy \
    sh -c "iptables -t nat -S KUBE-SERVICES | grep -q $SERVICE_IP/32"
}

# Argo: its CRDs (Argo 4: the full ones, its default; Argo 3: the full Workflow CRD, so the API
# server validates Workflows, and the minimal others), and its controller installed from its own manifests (the workflow-controller
# Deployment, ServiceAccount, ConfigMap and RBAC of cluster-install) as a pod, with the image
# built here. As a pod rather than a host process: it then runs as users run it (in-cluster
# configuration, Argo's own RBAC), and its listeners (health :6060) are on the pod network.
start_argo() {
  local crds=$KAR_ARGO_DIR/manifests/base/crds c
  admin create namespace "$ARGO_NAMESPACE" >/dev/null
  if [[ $KAR_ARGO_VERSION == v3.* ]]; then
    # Argo 3's install: the minimal CRDs; here the full Workflow CRD beside them.
    admin apply --server-side -f "$crds/full/argoproj.io_workflows.yaml" >/dev/null
    for c in "$crds"/minimal/argoproj.io_*.yaml; do
      [[ $(basename "$c") == argoproj.io_workflows.yaml ]] || admin apply --server-side -f "$c" >/dev/null
    done
  else
    # Argo 4's release manifests default to the full CRDs (docs/upgrading.md, "Full CRDs").
    for c in "$crds"/full/argoproj.io_*.yaml; do admin apply --server-side -f "$c" >/dev/null; done
  fi
  # (`kubectl wait` fails at once on a CRD that has no conditions yet: retry it.)
  wait_for "Argo's CRDs Established" 60 "" admin wait --for=condition=Established --timeout=5s crd --all
  local k=$S/argo-install
  rm -rf "$k"
  mkdir -p "$k"
  echo "$KAR_ARGO_DIR" >"$k/module-dir"
  # kustomize reads the module's directories in place; only this overlay is written.
  ln -s "$KAR_ARGO_DIR/manifests/base/workflow-controller" "$k/workflow-controller"
  ln -s "$KAR_ARGO_DIR/manifests/cluster-install-no-crds/workflow-controller-rbac" "$k/workflow-controller-rbac"
  cat >"$k/kustomization.yaml" <<Y
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $ARGO_NAMESPACE
resources:
- workflow-controller
- workflow-controller-rbac
images:
- name: quay.io/argoproj/workflow-controller
  newTag: $KAR_ARGO_VERSION
patches:
- target: {kind: Deployment, name: workflow-controller}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args
      value: [--configmap, workflow-controller-configmap,
              --executor-image, "quay.io/argoproj/argoexec:$KAR_ARGO_VERSION",
              --executor-image-pull-policy, IfNotPresent]
    - op: add
      path: /spec/template/spec/containers/0/imagePullPolicy
      value: IfNotPresent
    # Ready once it has loaded its configuration and serves its health check (the rollout
    # below waits for that; a bad configuration is fatal before it).
    - op: add
      path: /spec/template/spec/containers/0/readinessProbe
      value: {httpGet: {port: 6060, path: /healthz}, periodSeconds: 1}
    # One controller, no leader election; requeue after 1 s as Argo's own tests do (the default
    # 10 s makes every Workflow wait that long between steps).
    - op: add
      path: /spec/template/spec/containers/0/env/-
      value: {name: LEADER_ELECTION_DISABLE, value: "true"}
    - op: add
      path: /spec/template/spec/containers/0/env/-
      value: {name: DEFAULT_REQUEUE_TIME, value: 1s}
- target: {kind: ConfigMap, name: workflow-controller-configmap}
  patch: |-
    - op: add
      path: /data
      value:
        # No metrics or telemetry listeners. (Argo joins single-line values as \`key: value\`
        # lines, so these are blocks.)
        metricsConfig: |
          enabled: false
        telemetryConfig: |
          enabled: false
        # Nothing is pulled here: the images exist on the node, and an image named without a tag
        # (Argo's examples say \`busybox\`) would default to Always.
        workflowDefaults: |
          spec:
            templateDefaults:
              container:
                imagePullPolicy: IfNotPresent
Y
  admin kustomize "$k" | admin apply --server-side -f - >/dev/null
  wait_for "Argo's workflow-controller rollout" 120 "" \
    admin -n "$ARGO_NAMESPACE" rollout status deployment/workflow-controller --timeout=2s
}

# The Argo start_argo installed, removed: its controller, RBAC and namespace, then its CRDs
# (which takes every Workflow, and with them, through their ownerReferences, their pods).
stop_argo() {
  local k=$S/argo-install c
  [[ -f $k/module-dir ]] || return 0
  admin kustomize "$k" | admin delete --ignore-not-found --wait=true --timeout=120s -f - >/dev/null
  admin delete namespace "$ARGO_NAMESPACE" --ignore-not-found --wait=true --timeout=120s >/dev/null
  for c in $(admin get crd -o name | grep '\.argoproj\.io$'); do
    admin delete "$c" --wait=true --timeout=120s >/dev/null
  done
  rm -rf "$k"
}

# argo: the running cluster's Argo replaced by the Argo in use (KAR_ARGO_MAJOR).
argo() {
  tools_env
  [[ -f $S/admin.kubeconfig ]] && admin get --raw=/readyz >/dev/null 2>&1 ||
    die "no cluster is running: hack/cluster.sh up"
  stop_argo
  phase "Argo removed"
  start_argo
  phase "Argo $KAR_ARGO_VERSION controller ready"
}

up() {
  local why
  why=$(check) || die "no cluster can start here: $why"
  tools_env
  down >/dev/null 2>&1 || true
  mkdir -p "$S/run" "$S/logs"
  phase "clean up an earlier run"
  mkdir -p "$S/bin"
  ln -sf "$KAR_KUBECTL" "$S/bin/kubectl"
  pki
  network
  phase "certificates, bridge, CNI"
  start_containerd
  phase "containerd"
  images
  phase "images (build where changed, import)"
  start_control_plane
  phase "etcd + kube-apiserver ready"
  start_kubelet
  phase "kubelet: node Ready"
  start_controllers
  phase "controllers, scheduler, kube-proxy"
  start_argo
  phase "Argo $KAR_ARGO_VERSION controller ready"
  print_env
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) print_env ;;
  images) tools_env && runner_images && peer_images ;;
  check) check ;;
  can-start) can_start "${2:-$(uname -s)}" "${3:-$(id -u)}" ;;
  argo) argo ;;
  *) echo "usage: $0 up|down|env|images|argo|check|can-start [OS UID]" >&2; exit 2 ;;
esac
