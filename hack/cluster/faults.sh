# shellcheck shell=bash
# Faults for the local cluster (sourced by hack/cluster.sh; uses the settings and helpers of its
# other parts: common.sh, down.sh's kill_node_workloads, node.sh's node_ready).
# Each fault is injected now, undone by itself within its bound, and prints one line that says
# what was done and when (UTC, milliseconds), so that a test or the soak can relate what the
# runners logged to it:
#
#   hack/cluster.sh fault outage NAME SECONDS   # a host process stopped for SECONDS, then started
#                                               # again with the same flags and state, until ready
#                                               # (etcd, kube-apiserver, kubelet, containerd,
#                                               # kube-proxy, kube-controller-manager, kube-scheduler)
#   hack/cluster.sh fault netcut NS POD SECONDS # the pod's traffic to the API server dropped inside
#                                               # its network namespace for SECONDS; prints the
#                                               # packets dropped (the pod's attempts)
#   hack/cluster.sh fault oom NS POD            # the pod's first container OOM-killed by the kernel
#                                               # (its cgroup's limit lowered to what it uses, its
#                                               # first process made the OOM killer's choice, and
#                                               # the cgroup filled)
#   hack/cluster.sh fault reboot SECONDS        # the node rebooted: every cluster process and
#                                               # container killed, SECONDS of nothing, then all
#                                               # started again on the same state (etcd's data, the
#                                               # kubelet's root, containerd's images)

# now: the time as the fault lines give it.
now() { date -u +%H:%M:%S.%3N; }

# ready NAME: until the component NAME answers its health check (at most 90 s).
ready() {
  case $1 in
    etcd) wait_for "etcd /health" 90 etcd curl -fsS "http://$ETCD_CLIENT/health" ;;
    kube-apiserver) wait_for "kube-apiserver /readyz" 180 kube-apiserver admin get --raw /readyz ;;
    kubelet) wait_for "the kubelet's /healthz" 90 kubelet curl -fsS http://127.0.0.1:10248/healthz ;;
    containerd) wait_for containerd 30 containerd ctr_ version ;;
    kube-proxy) wait_for "kube-proxy's /healthz" 60 kube-proxy curl -fsS http://127.0.0.1:10256/healthz ;;
    kube-controller-manager)
      wait_for "kube-controller-manager's /healthz" 60 kube-controller-manager \
        curl -fsSk https://127.0.0.1:10257/healthz ;;
    kube-scheduler)
      wait_for "kube-scheduler's /healthz" 60 kube-scheduler curl -fsSk https://127.0.0.1:10259/healthz ;;
    *) die "no such cluster process: $1" ;;
  esac
}

# respawn NAME: NAME started again with the command line `spawn` recorded (NUL-separated
# words), appending to its log. A simple command in the background, so that $! is its pid.
respawn() {
  local n=$1 cmd
  [[ -f $S/run/$n.cmd ]] || die "$n was never started here (no $S/run/$n.cmd)"
  mapfile -d '' cmd <"$S/run/$n.cmd"
  echo "--- $(now) started again by hack/cluster.sh fault" >>"$S/logs/$n.log"
  PATH=/usr/sbin:/usr/bin:/sbin:/bin nohup "${cmd[@]}" >>"$S/logs/$n.log" 2>&1 &
  echo $! >"$S/run/$n.pid"
}

fault_outage() {
  local n=$1 secs=$2 t0
  [[ -f $S/run/$n.cmd ]] || die "no such cluster process: $n"
  local pid
  pid=$(cat "$S/run/$n.pid")
  t0=$(now)
  stop "$n" 2>/dev/null
  local i
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  ! kill -0 "$pid" 2>/dev/null || die "$n ($pid) did not stop"
  sleep "$secs"
  respawn "$n"
  ready "$n"
  echo "fault: $n down from $t0 to $(now) (stopped, $secs s, started again, ready)"
}

# pod_pid NS POD: the host pid of the first process of the pod's first container.
pod_pid() {
  local id
  id=$(admin -n "$1" get pod "$2" -o jsonpath='{.status.containerStatuses[0].containerID}')
  id=${id#containerd://}
  [[ -n $id ]] || die "pod $1/$2 has no running container"
  ctr_ tasks ls | awk -v id="$id" '$1 == id { print $2 }'
}

fault_netcut() {
  local ns=$1 pod=$2 secs=$3 pid t0 rule dropped
  pid=$(pod_pid "$ns" "$pod")
  [[ -n $pid ]] || die "pod $ns/$pod: its container has no task"
  # What the pod dials for the API server: the `kubernetes` Service's address (in-cluster
  # configuration) and the API server's own.
  local rules=("-d $SERVICE_IP/32 -j DROP" "-d $NODE_IP/32 -p tcp --dport $APISERVER_PORT -j DROP")
  t0=$(now)
  for rule in "${rules[@]}"; do
    # shellcheck disable=SC2086
    nsenter -t "$pid" -n iptables -w -I OUTPUT $rule
  done
  sleep "$secs"
  dropped=$(nsenter -t "$pid" -n iptables -w -nvx -L OUTPUT | awk '$3 == "DROP" { n += $1 } END { print n + 0 }')
  for rule in "${rules[@]}"; do
    # shellcheck disable=SC2086
    nsenter -t "$pid" -n iptables -w -D OUTPUT $rule 2>/dev/null || true
  done
  echo "fault: pod $ns/$pod cut from the API server from $t0 to $(now) ($secs s, $dropped packets dropped)"
}

fault_oom() {
  local ns=$1 pod=$2 pid victim name cg used hog t0
  pid=$(pod_pid "$ns" "$pod")
  [[ -n $pid ]] || die "pod $ns/$pod: its container has no task"
  # The kernel's choice in a real OOM: the largest process, which is the child the container's
  # first process runs (helm, under helm-runner), or the first process when it runs none.
  victim=$(pgrep -n -P "$pid" || true)
  victim=${victim:-$pid}
  name=$(cat "/proc/$victim/comm")
  cg=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$pid/cgroup")
  cg=/sys/fs/cgroup/memory$cg
  [[ -f $cg/memory.limit_in_bytes ]] || die "no memory cgroup for pod $ns/$pod ($cg)"
  t0=$(now)
  # Raising a score needs no privilege the VM lacks; the kernel then picks this process.
  echo 1000 >"/proc/$victim/oom_score_adj"
  used=$(cat "$cg/memory.usage_in_bytes")
  echo $((used + 4 * 1024 * 1024)) >"$cg/memory.limit_in_bytes"
  # The hog: `tail`, which keeps all it reads of a stream without line breaks, moved into the
  # container's cgroup and then fed /dev/zero until the limit is met. When the victim is a child,
  # the hog first holds 16 MiB from outside the cgroup (a process's OOM score counts all it
  # holds), with the victim's score: after the victim, the OOM killer's next choice is the hog,
  # not the first process, which lives to say what happened, as in a real OOM, where what the
  # victim frees ends the pressure.
  local go head=0 rss i
  go=$(mktemp -u)
  [[ $victim == "$pid" ]] || head=$((16 * 1024 * 1024))
  { head -c "$head" /dev/zero; until [[ -e $go ]]; do sleep 0.05; done; exec cat /dev/zero; } 2>/dev/null | tail >/dev/null &
  hog=$!
  for i in $(seq 1 100); do
    rss=$(awk '$1 == "VmRSS:" { print $2 * 1024 }' "/proc/$hog/status")
    (( rss >= head )) && break
    sleep 0.05
  done
  (( head == 0 )) || echo 1000 >"/proc/$hog/oom_score_adj"
  echo "$hog" >"$cg/cgroup.procs"
  touch "$go"
  for i in $(seq 1 100); do kill -0 "$victim" 2>/dev/null || break; sleep 0.1; done
  kill "$hog" 2>/dev/null || true
  wait "$hog" 2>/dev/null || true
  rm -f "$go"
  kill -0 "$victim" 2>/dev/null && die "pod $ns/$pod: its process $victim survived the OOM"
  echo "fault: pod $ns/$pod: its process $name ($victim) OOM-killed at $t0 (the container's memory limit lowered to $((used / 1048576 + 4)) MiB and filled)"
}

# The host processes in the order a node starts them.
NODE_PROCESSES=(containerd etcd kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler)

fault_reboot() {
  local secs=$1 t0 n
  t0=$(now)
  stop kube-scheduler
  stop kube-controller-manager
  stop kubelet
  kill_node_workloads
  stop kube-proxy
  stop kube-apiserver
  stop etcd
  sleep "$secs"
  for n in "${NODE_PROCESSES[@]}"; do
    respawn "$n"
    ready "$n"
  done
  wait_for "node $NODE_NAME Ready" 90 kubelet node_ready
  echo "fault: node rebooted from $t0 to $(now) (every process and container killed, $secs s, started again, node Ready)"
}

# fault KIND ARGS...: the dispatcher of `hack/cluster.sh fault`.
fault() {
  tools_env
  [[ -f $S/admin.kubeconfig ]] || die "no cluster is running: hack/cluster.sh up"
  local kind=${1:-}
  shift || true
  case $kind in
    outage) [[ $# == 2 ]] || die "usage: fault outage NAME SECONDS"; fault_outage "$@" ;;
    netcut) [[ $# == 3 ]] || die "usage: fault netcut NAMESPACE POD SECONDS"; fault_netcut "$@" ;;
    oom) [[ $# == 2 ]] || die "usage: fault oom NAMESPACE POD"; fault_oom "$@" ;;
    reboot) [[ $# == 1 ]] || die "usage: fault reboot SECONDS"; fault_reboot "$@" ;;
    *) die "usage: fault outage|netcut|oom|reboot ARGS (hack/cluster/faults.sh)" ;;
  esac
}
