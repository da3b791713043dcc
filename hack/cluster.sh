#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine: etcd, kube-apiserver, kubelet with
# containerd and runc, kube-proxy, kube-controller-manager, kube-scheduler, and Argo's real
# workflow-controller as a pod. Every image is built here and imported into containerd; nothing
# is ever pulled. Linux, as root.
#
#   hack/cluster.sh up       # (re)start it; prints `export KUBECONFIG=...` and friends
#   hack/cluster.sh down     # stop it and undo what it did to the host
#   hack/cluster.sh env      # print the exports again (eval-able)
#   hack/cluster.sh images   # (re)import the runner images from target/images/ (hack/build-images.sh)
#   hack/cluster.sh argo     # replace the running cluster's Argo (CRDs, controller) with the Argo
#                            # in use: Argo 4, or Argo 3 with KAR_ARGO_MAJOR=3 (every Workflow goes)
#   hack/cluster.sh check    # can a cluster start here? exit 0, or 1 with the reason on one line
#   hack/cluster.sh fault KIND ARGS  # inject a fault that undoes itself (hack/cluster/faults.sh)
#   hack/cluster.sh can-start [OS UID]
#                            # could one start here once hack/install-tools.sh has run (it installs
#                            # the packages as root)? exit 0, or 1 with the reason on one line. OS
#                            # and UID default to `uname -s` and `id -u` (hack/demo.sh asks this
#                            # before installing anything)
#
# Binaries come from hack/install-tools.sh (run it first). State lives in
# ${KAR_CLUSTER_DIR:-${KAR_CACHE:-$HOME/.cache/kube-action-runners}/cluster}, never in the
# repository: pid files in run/, logs in logs/, certificates in pki/, containerd's and the
# kubelet's roots. Images built for the cluster are kept in $KAR_CACHE/images between runs.
#
# Network: the API server, kubelet and kube-proxy listen on the bridge kar0 (10.88.0.1) or on
# loopback only. Pods live in 10.88.0.0/24 on kar0 and can reach this host and each other, nothing
# else: FORWARD rules drop anything leaving or entering the bridge's range through any other
# interface, there is no masquerading, and the pods' resolv.conf names 127.0.0.1 (no upstream
# DNS; in-cluster clients use the `kubernetes` Service's ClusterIP).
#
# One cluster per machine: the ports, the bridge, the /kubepods cgroups and kube-proxy's chains
# are host-wide. Tests share it and isolate by namespace.
#
# This file only dispatches; the cluster is in parts under hack/cluster/, each sourced here:
# common.sh (settings, logging, spawn/stop/wait_for), check.sh (check, can-start), pki.sh (the
# control plane's PKI from hack/control-plane.sh, tokens, kubeconfigs), network.sh (bridge, fence,
# CNI), containerd.sh, images.sh, apiserver.sh (etcd and kube-apiserver with the flags of
# hack/control-plane.sh, the one owner of the control plane's PKI and flags, which the tests' bare
# API server uses too), node.sh (kubelet), controllers.sh (kube-proxy, controller manager,
# scheduler), artifacts.sh (an S3 server on the bridge as Argo's default artifact repository), argo.sh, up.sh, down.sh (and kill_node_workloads, shared with a reboot), faults.sh.
# `up` and `argo` time their phases with hack/lib.sh (printed as each ends; recorded in KAR_PHASES
# when the caller set it). docs/local-cluster.md, "The scripts", says more.
set -euo pipefail
cd "$(dirname "$0")/.."

# Run alone, the phase times are only printed (hack/lib.sh would make a file for them).
export KAR_PHASES=${KAR_PHASES:-/dev/null}
source hack/lib.sh
for part in common check pki network containerd images apiserver node controllers artifacts argo up \
  down faults; do
  # shellcheck source=/dev/null
  source "hack/cluster/$part.sh"
done

case ${1:-} in
  up) up ;;
  down) down ;;
  env) print_env ;;
  images) tools_env && runner_images && peer_images ;;
  check) check ;;
  can-start) can_start "${2:-$(uname -s)}" "${3:-$(id -u)}" ;;
  argo) argo ;;
  fault) shift && fault "$@" ;;
  *) echo "usage: $0 up|down|env|images|argo|check|can-start [OS UID]|fault KIND ARGS" >&2; exit 2 ;;
esac
