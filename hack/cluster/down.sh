# shellcheck shell=bash
# Stopping: `down`, and what it shares with a fault's reboot (hack/cluster/faults.sh): the node's
# workloads killed and what they leave on the host removed (sourced by hack/cluster.sh).

down() {
  [[ -d $S ]] || return 0
  tools_env
  # 1. The control loops first, so that nothing restarts what is being stopped. The pods are
  #    not deleted through the API (slow, and the cluster's data goes anyway): their
  #    containers, network namespaces, mounts and cgroups are removed below.
  stop kube-scheduler
  stop kube-controller-manager
  stop kubelet
  # 2. The containers (their records too), the runtime, what they leave on the host.
  kill_node_workloads --remove-containers
  # 3. kube-proxy and its rules, then the control plane.
  stop kube-proxy
  stop_artifacts
  if [[ -x $KBIN/kube-proxy-$KV ]]; then "$KBIN/kube-proxy-$KV" --cleanup >/dev/null 2>&1 || true; fi
  stop kube-apiserver
  stop etcd
  # 4. The kubelet's own iptables chains (kube-proxy --cleanup leaves them).
  local ipt tc
  for ipt in iptables ip6tables; do
    $ipt -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    for tc in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY \
      mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
      $ipt -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null && $ipt -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
    done
  done
  # 5. The bridge, the FORWARD rules that fence it, ip_forward as it was.
  network_down
  # 6. What the node writes outside the state directory whatever its configuration (containerd
  #    1.6, the kubelet, libcni), removed only where nothing else is left in it.
  find /var/log/containers /var/log/pods -maxdepth 1 -lname "$S/*" -delete 2>/dev/null || true
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
    /var/log/containers 2>/dev/null || true
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd/fifo \
    /run/containerd/io.containerd.runtime.v2.task/k8s.io /run/containerd/io.containerd.runtime.v2.task \
    /run/containerd 2>/dev/null || true
  # 7. This cluster's data: a new `up` starts from an empty etcd and node. containerd's image
  #    store is kept (it only holds images this script imported).
  rm -rf "$S/etcd" "$S/kubelet" "$S/containerd/state" "$S/containerd/runc" "$S/cni" "$S/run" "$S/pki" \
    "$S/bin"
  rm -f "$S"/*.kubeconfig
  log "down"
}

# kill_node_workloads [--remove-containers]: every container and shim of this cluster killed, and what the node's
# runtime leaves behind (pod network namespaces, mounts, the kubelet's cgroups) removed, as a
# power cut and a boot would; etcd's data, the kubelet's root and containerd's images stay.
kill_node_workloads() {
  if [[ -S $S/containerd/containerd.sock ]] && ctr_ version >/dev/null 2>&1; then
    local t c
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$t" >/dev/null 2>&1 || true; done
    if [[ ${1:-} == --remove-containers ]]; then
      for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
    fi
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
  # Pod network namespaces this node's CNI made, found through libcni's result cache: the
  # files of this cluster's network (kar-<sandbox id>-eth0) name them; the loopback plugin's
  # file for the same sandbox goes too.
  local f ns
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
  # Mounts under the state directory (pod volumes, rootfs, shm), deepest first.
  local m
  awk -v s="$S/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # cgroups the kubelet made (cgroupfs driver), deepest first.
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $h ]] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  # What a boot clears: the runtime's state (a tmpfs on a real node).
  rm -rf "$S/containerd/state" "$S/containerd/runc"
}
