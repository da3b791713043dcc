# argo-runner: one static binary on an empty base. No shell, no libc, no package manager.
# Built by hack/build-images.sh from a context it prepares (target/images/context/linux-<arch>/argo-runner):
#   argo-runner   the static release binary (checked static before the build)
FROM scratch
COPY --chown=0:0 argo-runner /argo-runner
# Any non-root UID works; 65532 is the conventional "nonroot" of static base images. The Job in
# deploy/ also sets runAsNonRoot, a read-only root filesystem and drops all capabilities.
USER 65532:65532
ENTRYPOINT ["/argo-runner"]
