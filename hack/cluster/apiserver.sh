# shellcheck shell=bash
# The control plane: etcd and kube-apiserver, with the flags hack/control-plane.sh gives them
# (their one owner, shared with the tests' bare API server); here on the fixed ports, the API
# server on the node address (sourced by hack/cluster.sh).

start_control_plane() {
  local P=$S/pki
  etcd_flags --data-dir "$S/etcd" --client "$ETCD_CLIENT" --peer "$ETCD_PEER"
  spawn etcd "$KAR_ETCD" "${CONTROL_PLANE_FLAGS[@]}"
  kube_apiserver_flags --pki "$P" --etcd "$ETCD_CLIENT" --address "$NODE_IP" \
    --port "$APISERVER_PORT" --tokens "$P/tokens.csv" --audit-log "$S/logs/audit.log"
  spawn kube-apiserver "$KBIN/kube-apiserver-$KV" "${CONTROL_PLANE_FLAGS[@]}"
  wait_for "kube-apiserver /readyz" 90 kube-apiserver admin get --raw /readyz
}
