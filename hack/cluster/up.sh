# shellcheck shell=bash
# `up`: the cluster (re)started from nothing, each phase timed (hack/lib.sh), and the exports
# printed (sourced by hack/cluster.sh).

up() {
  local why
  why=$(check) || die "no cluster can start here: $why"
  tools_env
  phase_start "cluster: clean up an earlier run"
  down >/dev/null 2>&1 || true
  mkdir -p "$S/run" "$S/logs"
  phase_end
  phase_start "cluster: certificates, bridge, CNI"
  mkdir -p "$S/bin"
  ln -sf "$KAR_KUBECTL" "$S/bin/kubectl"
  pki
  network
  phase_end
  phase_start "cluster: containerd"
  start_containerd
  phase_end
  phase_start "cluster: images (build where changed, import)"
  images
  phase_end
  phase_start "cluster: etcd + kube-apiserver ready"
  start_control_plane
  phase_end
  phase_start "cluster: kubelet, node Ready"
  start_kubelet
  phase_end
  phase_start "cluster: controllers, scheduler, kube-proxy"
  start_controllers
  phase_end
  phase_start "cluster: artifact repository (versitygw on the bridge)"
  start_artifacts
  phase_end
  phase_start "cluster: Argo $KAR_ARGO_VERSION controller ready"
  start_argo
  phase_end
  log "up in $SECONDS s"
  print_env
}
