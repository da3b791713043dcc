# shellcheck shell=bash
# Whether a cluster can start here (`check`), or could once hack/install-tools.sh has run
# (`can-start`), each saying why not in one line (sourced by hack/cluster.sh).

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
  # The Argo in use only: the other major is built later (hack/late.sh) and checked when the
  # cluster switches to it (`argo`, argo_images).
  for b in "$KAR_KUBECTL" "$KBIN/kubelet-$KV" "$KAR_PAUSE" \
    "$KBIN/workflow-controller-$KAR_ARGO_VERSION" "$KBIN/argoexec-$KAR_ARGO_VERSION"; do
    [[ -x $b ]] || { echo "$b is missing (run hack/install-tools.sh)"; return 1; }
  done
  [[ -x /usr/lib/cni/bridge ]] || { echo "the CNI plugins are missing (Debian's containernetworking-plugins)"; return 1; }
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || { echo "no memory cgroup"; return 1; }
  return 0
}
