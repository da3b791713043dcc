# shellcheck shell=bash
# shellcheck disable=SC2034 # ARTIFACTS_* are read by argo.sh
# Argo's default artifact repository: an S3 server on the cluster's bridge (sourced by
# hack/cluster.sh).
#
# versitygw (github.com/versity/versitygw, built by hack/install-tools.sh) with its POSIX backend:
# a bucket is a directory under $S/artifacts/data, an object a file, so a test can see what Argo
# stored. It listens on the bridge only (NODE_IP:ARTIFACTS_PORT), where the pods reach it and
# nothing outside this machine can. Its root credentials are made at `up` (random, in a 0600
# file, passed in its environment, never on a command line). Argo's executor reads them from the
# Secret ARTIFACTS_SECRET, which must be in each Workflow's namespace (Argo looks the artifact
# repository's Secrets up there): `hack/cluster.sh env` names the directory whose
# credentials.env a test makes it from (KAR_CLUSTER_ARTIFACTS_DIR).
#
# Optional: without versitygw the cluster has no artifact repository, and only the artifact tests
# (tests/tests/cluster_e2e.rs, `argo_artifacts_*`) skip.

ARTIFACTS_PORT=9000
ARTIFACTS_BUCKET=argo-artifacts
ARTIFACTS_SECRET=argo-artifacts-s3
# The region the server is given and the requests are signed for, also in Argo's configuration.
ARTIFACTS_REGION=us-east-1
ARTIFACTS_DIR=$S/artifacts

# artifacts_running -> success when `up` started the artifact repository.
artifacts_running() { [[ -f $S/run/versitygw.pid ]]; }

# s3 METHOD PATH: one signed request (SigV4) to the artifact repository; the credentials go to
# curl in a config file on stdin, not on its command line.
s3() {
  local method=$1 path=$2 empty
  empty=$(printf '' | sha256sum | cut -d' ' -f1)
  (
    # shellcheck source=/dev/null
    source "$ARTIFACTS_DIR/credentials.env"
    printf 'user = "%s:%s"\n' "$ROOT_ACCESS_KEY_ID" "$ROOT_SECRET_ACCESS_KEY"
  ) | curl -sf -K - --aws-sigv4 "aws:amz:$ARTIFACTS_REGION:s3" -H "x-amz-content-sha256: $empty" \
    -X "$method" "http://$NODE_IP:$ARTIFACTS_PORT/$path"
}

start_artifacts() {
  if [[ ! -x ${KAR_VERSITYGW:-} ]]; then
    log "no versitygw (hack/install-tools.sh builds it): Argo runs without an artifact repository"
    return 0
  fi
  rm -rf "$ARTIFACTS_DIR"
  mkdir -p -m 0700 "$ARTIFACTS_DIR"
  mkdir -p "$ARTIFACTS_DIR/data"
  (
    umask 077
    printf 'ROOT_ACCESS_KEY_ID=kar%s\nROOT_SECRET_ACCESS_KEY=%s\n' \
      "$(openssl rand -hex 8)" "$(openssl rand -hex 20)" >"$ARTIFACTS_DIR/credentials.env"
  )
  (
    set -a
    # shellcheck source=/dev/null
    source "$ARTIFACTS_DIR/credentials.env"
    spawn versitygw "$KAR_VERSITYGW" --port "$NODE_IP:$ARTIFACTS_PORT" --region "$ARTIFACTS_REGION" --quiet \
      posix "$ARTIFACTS_DIR/data"
  )
  wait_for "the artifact repository (versitygw) on $NODE_IP:$ARTIFACTS_PORT" 30 versitygw \
    s3 GET ""
  s3 PUT "$ARTIFACTS_BUCKET" >/dev/null
  log "artifact repository: s3://$ARTIFACTS_BUCKET at http://$NODE_IP:$ARTIFACTS_PORT"
}

stop_artifacts() {
  stop versitygw
  rm -rf "$ARTIFACTS_DIR"
}

# artifact_repository_config -> the workflow-controller-configmap's `artifactRepository` (Argo's
# ArtifactRepository, `s3`), indented for argo.sh's ConfigMap patch; nothing when the artifact
# repository is not running.
artifact_repository_config() {
  artifacts_running || return 0
  cat <<Y
        artifactRepository: |
          s3:
            bucket: $ARTIFACTS_BUCKET
            endpoint: $NODE_IP:$ARTIFACTS_PORT
            region: $ARTIFACTS_REGION
            insecure: true
            accessKeySecret: {name: $ARTIFACTS_SECRET, key: accessKey}
            secretKeySecret: {name: $ARTIFACTS_SECRET, key: secretKey}
Y
}
