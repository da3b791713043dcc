# shellcheck shell=bash
# containerd, configured to keep everything under the state directory (sourced by
# hack/cluster.sh).

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
