# shellcheck shell=bash
# Argo's CRDs and its workflow-controller as a pod: installed, removed, replaced (sourced by
# hack/cluster.sh).

# Argo: its CRDs (Argo 4: the full ones, its default; Argo 3: the full Workflow CRD, so the API
# server validates Workflows, and the minimal others), and its controller installed from its own manifests (the workflow-controller
# Deployment, ServiceAccount, ConfigMap and RBAC of cluster-install) as a pod, with the image
# built here. As a pod rather than a host process: it then runs as users run it (in-cluster
# configuration, Argo's own RBAC), and its listeners (health :6060) are on the pod network.
start_argo() {
  local crds=$KAR_ARGO_DIR/manifests/base/crds c
  admin create namespace "$ARGO_NAMESPACE" >/dev/null
  if [[ $KAR_ARGO_VERSION == v3.* ]]; then
    # Argo 3's install: the minimal CRDs; here the full Workflow CRD beside them.
    admin apply --server-side -f "$crds/full/argoproj.io_workflows.yaml" >/dev/null
    for c in "$crds"/minimal/argoproj.io_*.yaml; do
      [[ $(basename "$c") == argoproj.io_workflows.yaml ]] || admin apply --server-side -f "$c" >/dev/null
    done
  else
    # Argo 4's release manifests default to the full CRDs (docs/upgrading.md, "Full CRDs").
    for c in "$crds"/full/argoproj.io_*.yaml; do admin apply --server-side -f "$c" >/dev/null; done
  fi
  # (`kubectl wait` fails at once on a CRD that has no conditions yet: retry it.)
  wait_for "Argo's CRDs Established" 60 "" admin wait --for=condition=Established --timeout=5s crd --all
  # With the artifact repository running (hack/cluster/artifacts.sh), it is Argo's default
  # (the ConfigMap's `artifactRepository`).
  # Argo 4 replaces a step's pod that failed before its main container started (evicted,
  # rejected by the kubelet) when asked to: at most twice here, which tests/tests/cluster_e2e.rs
  # sees in the node's failedPodRestarts. Argo 3.7 has no such setting.
  local restart=""
  if [[ $KAR_ARGO_VERSION != v3.* ]]; then
    restart=$'        failedPodRestart: |\n          enabled: true\n          maxRestarts: 2'
  fi
  local k=$S/argo-install
  rm -rf "$k"
  mkdir -p "$k"
  echo "$KAR_ARGO_DIR" >"$k/module-dir"
  # kustomize reads the module's directories in place; only this overlay is written.
  ln -s "$KAR_ARGO_DIR/manifests/base/workflow-controller" "$k/workflow-controller"
  ln -s "$KAR_ARGO_DIR/manifests/cluster-install-no-crds/workflow-controller-rbac" "$k/workflow-controller-rbac"
  cat >"$k/kustomization.yaml" <<Y
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $ARGO_NAMESPACE
resources:
- workflow-controller
- workflow-controller-rbac
images:
- name: quay.io/argoproj/workflow-controller
  newTag: $KAR_ARGO_VERSION
patches:
- target: {kind: Deployment, name: workflow-controller}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args
      value: [--configmap, workflow-controller-configmap,
              --executor-image, "quay.io/argoproj/argoexec:$KAR_ARGO_VERSION",
              --executor-image-pull-policy, IfNotPresent]
    - op: add
      path: /spec/template/spec/containers/0/imagePullPolicy
      value: IfNotPresent
    # Ready once it has loaded its configuration and serves its health check (the rollout
    # below waits for that; a bad configuration is fatal before it).
    - op: add
      path: /spec/template/spec/containers/0/readinessProbe
      value: {httpGet: {port: 6060, path: /healthz}, periodSeconds: 1}
    # One controller, no leader election; requeue after 1 s as Argo's own tests do (the default
    # 10 s makes every Workflow wait that long between steps).
    - op: add
      path: /spec/template/spec/containers/0/env/-
      value: {name: LEADER_ELECTION_DISABLE, value: "true"}
    - op: add
      path: /spec/template/spec/containers/0/env/-
      value: {name: DEFAULT_REQUEUE_TIME, value: 1s}
- target: {kind: ConfigMap, name: workflow-controller-configmap}
  patch: |-
    - op: add
      path: /data
      value:
        # No metrics or telemetry listeners. (Argo joins single-line values as \`key: value\`
        # lines, so these are blocks.)
        metricsConfig: |
          enabled: false
        telemetryConfig: |
          enabled: false
        # Nothing is pulled here: the images exist on the node, and an image named without a tag
        # (Argo's examples say \`busybox\`) would default to Always.
        workflowDefaults: |
          spec:
            templateDefaults:
              container:
                imagePullPolicy: IfNotPresent
$restart
$(artifact_repository_config)
Y
  admin kustomize "$k" | admin apply --server-side -f - >/dev/null
  wait_for "Argo's workflow-controller rollout" 120 "" \
    admin -n "$ARGO_NAMESPACE" rollout status deployment/workflow-controller --timeout=2s
}

# The Argo start_argo installed, removed: its controller, RBAC and namespace, then its CRDs
# (which takes every Workflow, and with them, through their ownerReferences, their pods).
stop_argo() {
  local k=$S/argo-install c
  [[ -f $k/module-dir ]] || return 0
  admin kustomize "$k" | admin delete --ignore-not-found --wait=true --timeout=120s -f - >/dev/null
  admin delete namespace "$ARGO_NAMESPACE" --ignore-not-found --wait=true --timeout=120s >/dev/null
  for c in $(admin get crd -o name | grep '\.argoproj\.io$'); do
    admin delete "$c" --wait=true --timeout=120s >/dev/null
  done
  rm -rf "$k"
}

# argo: the running cluster's Argo replaced by the Argo in use (KAR_ARGO_MAJOR).
argo() {
  tools_env
  [[ -f $S/admin.kubeconfig ]] && admin get --raw=/readyz >/dev/null 2>&1 ||
    die "no cluster is running: hack/cluster.sh up"
  phase_start "cluster: Argo removed"
  stop_argo
  phase_end
  phase_start "cluster: Argo $KAR_ARGO_VERSION controller ready"
  # Its images, where `up` did not build them (the major was built later).
  argo_images "$KAR_ARGO_VERSION"
  start_argo
  phase_end
}
