# shellcheck shell=bash
# The cluster's certificates and credentials (sourced by hack/cluster.sh): the control plane's
# PKI as hack/control-plane.sh makes it, in pki/, and a static token and a kubeconfig per
# component.

pki() {
  local P=$S/pki
  # The CA, kube-apiserver's serving certificate (also for the node address the cluster serves
  # on) and its kubelet client certificate, the ServiceAccount key, the audit policy.
  control_plane_init "$P" "$NODE_IP"
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
  cluster: {server: "https://$NODE_IP:$APISERVER_PORT", certificate-authority: "$S/pki/ca.crt"}
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
