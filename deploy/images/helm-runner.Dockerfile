# helm-runner: the static runner plus a pinned, checksummed helm binary on an empty base.
# Built by hack/build-images.sh from a context it prepares (target/images/context/linux-<arch>/helm-runner):
#   helm-runner        the static release binary (checked static before the build)
#   helm               helm as hack/install-tools.sh builds it (CGO_ENABLED=0, static), its
#                      sha256 checked against deploy/images/helm.lock
#   ca-certificates.crt  Debian's CA bundle, so helm can fetch charts over HTTPS
FROM scratch
COPY --chown=0:0 helm-runner /helm-runner
COPY --chown=0:0 helm /usr/local/bin/helm
COPY --chown=0:0 ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/bin
# Helm writes its cache and config under $HOME: the Job mounts an emptyDir at /tmp, since the
# root filesystem is read-only.
ENV HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/helm-runner"]
