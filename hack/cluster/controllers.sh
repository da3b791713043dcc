# shellcheck shell=bash
# kube-proxy, kube-controller-manager and kube-scheduler (sourced by hack/cluster.sh).

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
