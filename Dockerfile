# Portcullis: one image for the control plane, the data plane and the demo services; the command picks
# the role:
#   docker build -t portcullis .
#   docker run portcullis control-plane        # or: data-plane, demo idp, demo echo, demo configure
# Configuration is by PORTCULLIS_* environment variables only; data lives in the volume
# /var/lib/portcullis; the process runs as an unprivileged user (65532).
#
# Build arguments:
#   RUST_IMAGE     the compiler image of the build stage (default: the official Rust image)
#   RUNTIME_IMAGE  the runtime base: glibc and libgcc, no shell or package manager needed
#                  (default: distroless cc, whose user 65532 is "nonroot")
#   BINARIES       "build" compiles in RUST_IMAGE; "prebuilt" copies PREBUILT_DIR (target/release) from
#                  the build context instead (where the binaries were already built, as
#                  scripts/docker-build.sh does on machines without a registry)
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=build
ARG PREBUILT_DIR=target/release

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p control-plane -p data-plane -p demo --bins \
 && mkdir -p /out/bin \
 && cp target/release/control-plane target/release/data-plane target/release/portcullis-probe \
       target/release/demo /out/bin/

FROM scratch AS prebuilt
ARG PREBUILT_DIR
COPY ${PREBUILT_DIR}/control-plane ${PREBUILT_DIR}/data-plane ${PREBUILT_DIR}/portcullis-probe \
     ${PREBUILT_DIR}/demo /out/bin/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
COPY --from=binaries /out/bin/ /usr/local/bin/
COPY --chown=65532:65532 docker/data/ /var/lib/portcullis/
# Shared between containers (an enrollment token written by `demo configure`); a volume mounted here
# starts owned by the unprivileged user.
COPY --chown=65532:65532 docker/data/ /etc/portcullis/
ENV PORTCULLIS_DATA_DIR=/var/lib/portcullis \
    PORTCULLIS_LOG_FORMAT=json \
    PORTCULLIS_LOG_OUTPUT=stdout \
    PORTCULLIS_ADMIN_LISTEN=0.0.0.0:8001 \
    PORTCULLIS_MANAGER_LISTEN=off \
    PORTCULLIS_CLUSTER_LISTEN=0.0.0.0:8005 \
    PORTCULLIS_PROXY_LISTEN=0.0.0.0:8000 \
    PORTCULLIS_PROXY_LISTEN_TLS=0.0.0.0:8443 \
    PORTCULLIS_STATUS_LISTEN=0.0.0.0:8100
USER 65532:65532
VOLUME ["/var/lib/portcullis"]
# 8002: the operator console, served only when PORTCULLIS_MANAGER_LISTEN is set (e.g. 0.0.0.0:8002).
EXPOSE 8000 8001 8002 8005 8100 8443
# Asks the container's main process on its own status (data plane: ready to serve) or admin address.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["portcullis-probe"]
CMD ["data-plane"]
