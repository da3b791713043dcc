# shellcheck shell=bash
# The kubelet, the node (sourced by hack/cluster.sh).

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
