# watcher as a sidecar image: a static binary on scratch, with CA certificates and the time zone
# database, running as a non-root user. docs/sidecar.md explains every choice below.
#
#   docker build -t watcher .                                      # this machine's platform
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) -t registry.example/watcher:latest --push .
#
# The build stage runs on the build machine's platform (BUILDPLATFORM) and cross-compiles for the
# target one (TARGETOS/TARGETARCH): no emulation, one Go toolchain for every architecture.
# BuildKit sets those three itself. The legacy builder (DOCKER_BUILDKIT=0, or a Docker CLI without
# the buildx plugin) does not: it builds for linux/amd64 unless given
# --build-arg BUILDPLATFORM=linux/arm64 (and TARGETARCH=arm64).
#
# The context is what .dockerignore lets in: only the sources of the binary (see there).
#
# Every RUN is in exec form, so the build stage needs no shell: any image with a Go toolchain on
# PATH, CA certificates and a /tmp works as GO_IMAGE (the end-to-end test, which has no Docker
# Hub, builds one from the machine's own GOROOT).

ARG GO_IMAGE=golang:1.26
ARG BUILDPLATFORM

FROM --platform=${BUILDPLATFORM:-linux/amd64} ${GO_IMAGE} AS build
# GOPROXY/GOSUMDB: pass a mirror (or a local proxy for an offline build) with --build-arg; a
# proxy on the build machine's loopback, or a build engine without a bridge network, also needs
# `docker build --network host`.
ARG TARGETOS TARGETARCH GOPROXY GOSUMDB
# Go's build cache (~200 MB) is scratch space, not part of any layer: the legacy builder discards
# what RUN writes below a VOLUME (BuildKit keeps it in this stage only; the image never has it).
VOLUME ["/root/.cache/go-build"]
# The state directory, created empty here and handed to the watcher's user in the final stage.
WORKDIR /rootfs/var/lib/watcher
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN ["go", "mod", "download"]
ARG VERSION=dev
# Static (no cgo), reproducible paths (-trimpath), the time zone database compiled in
# (-tags timetzdata: scratch has no /usr/share/zoneinfo), symbols stripped, version stamped.
# An empty GOOS/GOARCH (legacy builder) means the build stage's own platform.
ENV CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    GOFLAGS="-trimpath -mod=readonly -tags=timetzdata '-ldflags=-s -w -X main.version=${VERSION}'"
COPY . .
RUN ["go", "build", "-o", "/rootfs/watcher", "./cmd/watcher"]

FROM scratch
ARG VERSION=dev REVISION=
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs/watcher /watcher
# A new volume at /var/lib/watcher (named or anonymous) starts with this owner, so the non-root
# user can write its state there while the root filesystem stays read-only.
COPY --from=build --chown=65532:65532 /rootfs/var/lib/watcher /var/lib/watcher
LABEL org.opencontainers.image.title="watcher" \
      org.opencontainers.image.description="Keeps labelled Docker containers on their newest image, with journaled replacement and rollback" \
      org.opencontainers.image.source="https://github.com/watcher-dev/watcher" \
      org.opencontainers.image.url="https://github.com/watcher-dev/watcher" \
      org.opencontainers.image.documentation="https://github.com/watcher-dev/watcher/blob/main/docs/sidecar.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# Non-root. The Docker socket is root:docker 0660 on most hosts: run with
# --group-add <the socket's group id>, or point DOCKER_HOST at a docker-socket-proxy.
USER 65532:65532
VOLUME ["/var/lib/watcher"]
EXPOSE 8080
# Asks the running daemon's /healthz on loopback (http.listen's port; TLS when http.tls_cert is set).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/watcher", "healthcheck"]
ENTRYPOINT ["/watcher"]
CMD ["run"]
