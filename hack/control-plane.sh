#!/usr/bin/env bash
# The control plane's one owner: etcd's and kube-apiserver's certificates, keys, flags and audit
# policy, for both control planes this repository starts: the local cluster's (hack/cluster.sh,
# which sources this file and calls its functions) and the tests' bare API server
# (tests/src/control_plane.rs, which runs it). What differs between the two is a parameter: the
# addresses and ports, the static token file (the caller writes it), the audit log's path, and
# ServiceAccount admission (off on the bare API server, where no controller creates a namespace's
# `default` ServiceAccount).
#
#   hack/control-plane.sh init DIR [IP...]
#       writes into DIR the CA (ca.crt, ca.key), kube-apiserver's serving certificate
#       (apiserver.crt, .key: for 127.0.0.1, localhost, the `kubernetes` Service's address and
#       names, and each IP), its client certificate for the kubelets (apiserver-kubelet-client.crt,
#       .key), the ServiceAccount token signing key (sa.key, sa.pub) and the audit policy
#       (audit-policy.yaml). Needs openssl.
#   hack/control-plane.sh etcd-flags --data-dir DIR --client HOST:PORT --peer HOST:PORT
#   hack/control-plane.sh kube-apiserver-flags --pki DIR --etcd HOST:PORT --address IP --port PORT
#                                              --tokens FILE --audit-log FILE
#                                              [--no-service-account-admission]
#       the component's flags, one a line (--name=value), for the files `init` wrote in DIR
#
# Sourced, it defines the functions below (control_plane_init, etcd_flags, kube_apiserver_flags;
# the flag functions leave the flags in the array CONTROL_PLANE_FLAGS) and the Service range.

# The Services' range and the `kubernetes` Service's address (its first).
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1

# control_plane_init DIR [IP...]: the files `init` writes (see above).
control_plane_init() {
  local dir=$1 ip sans
  shift
  sans="IP:127.0.0.1,IP:$SERVICE_IP"
  for ip in "$@"; do sans+=",IP:$ip"; done
  sans+=",DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  sans+=",DNS:kubernetes.default.svc.cluster.local"
  mkdir -p "$dir"
  (
    cd "$dir"
    _cp_quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.crt -days 7 -subj /CN=kar-cluster-ca
    # kube-apiserver's serving certificate: every name and address its clients use.
    _cp_quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver.key \
      -out apiserver.csr -subj /CN=kube-apiserver
    _cp_quiet openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -out apiserver.crt -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans")
    # The client certificate kube-apiserver shows the kubelet (logs, exec).
    _cp_quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout apiserver-kubelet-client.key -out apiserver-kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
    _cp_quiet openssl x509 -req -in apiserver-kubelet-client.csr -CA ca.crt -CAkey ca.key \
      -CAcreateserial -days 7 -out apiserver-kubelet-client.crt \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n')
    # ServiceAccount token signing key.
    _cp_quiet openssl genrsa -out sa.key 2048
    _cp_quiet openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ./*.csr
    # Every request's metadata, once it has been answered.
    cat >audit-policy.yaml <<A
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
A
  )
}

# etcd_flags --data-dir DIR --client HOST:PORT --peer HOST:PORT: plain HTTP on those addresses,
# a member of its own, no fsync (the data is thrown away with the control plane).
etcd_flags() {
  local -A o=()
  _cp_options o "data-dir client peer" "" "$@" || return
  CONTROL_PLANE_FLAGS=(
    "--data-dir=${o[data-dir]}"
    --name=kar
    "--listen-client-urls=http://${o[client]}"
    "--advertise-client-urls=http://${o[client]}"
    "--listen-peer-urls=http://${o[peer]}"
    "--initial-advertise-peer-urls=http://${o[peer]}"
    "--initial-cluster=kar=http://${o[peer]}"
    --listen-metrics-urls=
    --unsafe-no-fsync
    --log-level=error
  )
}

# kube_apiserver_flags --pki DIR --etcd HOST:PORT --address IP --port PORT --tokens FILE
#   --audit-log FILE [--no-service-account-admission]: serving on IP:PORT with the certificates in
#   DIR; clients authenticated by DIR's CA or a static token of FILE, authorized by RBAC (and the
#   Node authorizer for kubelets); ServiceAccount tokens issued; every request's metadata in the
#   audit log.
kube_apiserver_flags() {
  local -A o=()
  _cp_options o "pki etcd address port tokens audit-log" "no-service-account-admission" "$@" || return
  local p=${o[pki]}
  # shellcheck disable=SC2054 # Node,RBAC is one word
  CONTROL_PLANE_FLAGS=(
    "--etcd-servers=http://${o[etcd]}"
    "--bind-address=${o[address]}"
    "--advertise-address=${o[address]}"
    "--secure-port=${o[port]}"
    "--tls-cert-file=$p/apiserver.crt"
    "--tls-private-key-file=$p/apiserver.key"
    "--client-ca-file=$p/ca.crt"
    "--token-auth-file=${o[tokens]}"
    --authorization-mode=Node,RBAC
    --enable-admission-plugins=NodeRestriction
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
    "--service-account-key-file=$p/sa.pub"
    "--service-account-signing-key-file=$p/sa.key"
    "--service-cluster-ip-range=$SERVICE_CIDR"
    "--kubelet-client-certificate=$p/apiserver-kubelet-client.crt"
    "--kubelet-client-key=$p/apiserver-kubelet-client.key"
    --kubelet-preferred-address-types=InternalIP
    "--audit-log-path=${o[audit-log]}"
    "--audit-policy-file=$p/audit-policy.yaml"
    --audit-log-maxsize=200
    --audit-log-maxbackup=1
    --v=0
  )
  if [[ -n ${o[no-service-account-admission]:-} ]]; then
    CONTROL_PLANE_FLAGS+=(--disable-admission-plugins=ServiceAccount)
  fi
  # Kubernetes 1.37 refuses a loopback advertise address with the default (lease) reconciler of
  # the `kubernetes` Service's endpoints ("may not be in the loopback range"); on loopback
  # nothing reaches the API server through that Service.
  if [[ ${o[address]} == 127.* ]]; then
    CONTROL_PLANE_FLAGS+=(--endpoint-reconciler-type=none)
  fi
}

# _cp_options ARRAY "REQUIRED..." "SWITCHES..." ARGS...: `--name value` pairs of the REQUIRED
# names and bare `--name` SWITCHES into the associative array ARRAY; fails naming what is wrong.
_cp_options() {
  local -n _o=$1
  local required=" $2 " switches=" $3 " name
  shift 3
  while (($#)); do
    name=${1#--}
    if [[ $switches == *" $name "* ]]; then
      _o["$name"]=1
      shift
    elif [[ $required == *" $name "* && $# -ge 2 ]]; then
      _o["$name"]=$2
      shift 2
    else
      echo "control-plane: unknown option or missing value: $1" >&2
      return 2
    fi
  done
  for name in ${required}; do
    [[ -n ${_o[$name]:-} ]] || { echo "control-plane: --$name is required" >&2; return 2; }
  done
}

# _cp_quiet COMMAND...: COMMAND's output only when it fails (openssl's progress is noise).
_cp_quiet() {
  local out
  out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    init)
      [[ $# -ge 2 ]] || { echo "usage: $0 init DIR [IP...]" >&2; exit 2; }
      shift
      control_plane_init "$@"
      ;;
    etcd-flags | kube-apiserver-flags)
      cmd=${1//-/_}
      shift
      "$cmd" "$@" || exit
      printf '%s\n' "${CONTROL_PLANE_FLAGS[@]}"
      ;;
    *)
      echo "usage: $0 init DIR [IP...] | etcd-flags OPTIONS | kube-apiserver-flags OPTIONS" >&2
      exit 2
      ;;
  esac
fi
