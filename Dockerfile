# syntax=docker/dockerfile:1
#
# fluxloop container images.
#
#   docker build -t fluxloop .                  # minimal: the static binary only (default)
#   docker build --target shell -t fluxloop:shell .   # plus a BusyBox shell, for GitLab `script:` jobs
#
#   docker run --rm -e FLUXLOOP_API_KEY -v "$PWD:/work" fluxloop test --no-skip-upload --yes
#
# The binary is built from source in a musl (Alpine) stage and is fully
# static; the CA roots are compiled into it, so the final image needs no
# /etc/ssl. Both images run as the numeric user 65532 with HOME=/home/fluxloop
# and WORKDIR /work. The release workflow builds from the released binaries
# instead (BINARY_FROM=dist, dist/docker/<arch>/fluxloop), so the image holds
# exactly the checksummed release asset.

ARG RUST_VERSION=1.89
ARG BINARY_FROM=source

# --- build the static binary --------------------------------------------------
FROM rust:${RUST_VERSION}-alpine AS build
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fluxloop \
 && install -D -m 0755 target/release/fluxloop /out/fluxloop \
 && /out/fluxloop --version

# --- where the binary comes from: this build, or a release asset --------------
FROM scratch AS bin-source
COPY --from=build /out/fluxloop /fluxloop

FROM scratch AS bin-dist
ARG TARGETARCH
COPY dist/docker/${TARGETARCH}/fluxloop /fluxloop

# hadolint ignore=DL3006
FROM bin-${BINARY_FROM} AS bin

# --- the files a non-root user needs: passwd entry, home, work dir, /tmp ------
FROM busybox:1.37-musl AS rootfs
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/fluxloop /rootfs/work \
 && echo 'root:x:0:0:root:/root:/sbin/nologin' >/rootfs/etc/passwd \
 && echo 'fluxloop:x:65532:65532:fluxloop:/home/fluxloop:/sbin/nologin' >>/rootfs/etc/passwd \
 && printf 'root:x:0:\nfluxloop:x:65532:\n' >/rootfs/etc/group \
 && chmod 1777 /rootfs/tmp

# --- shell variant: fluxloop + BusyBox sh, for CI `script:` jobs --------------
FROM busybox:1.37-musl AS shell
COPY --from=rootfs /rootfs/etc/passwd /rootfs/etc/group /etc/
COPY --from=rootfs --chown=65532:65532 /rootfs/home/fluxloop /home/fluxloop
COPY --from=rootfs --chown=65532:65532 /rootfs/work /work
COPY --from=bin /fluxloop /usr/local/bin/fluxloop
ENV HOME=/home/fluxloop
USER 65532:65532
WORKDIR /work
RUN fluxloop --version
CMD ["sh"]

# --- default: minimal image, the binary alone ---------------------------------
FROM scratch AS runtime
COPY --from=rootfs /rootfs/etc/passwd /rootfs/etc/group /etc/
COPY --from=rootfs /rootfs/tmp /tmp
COPY --from=rootfs --chown=65532:65532 /rootfs/home/fluxloop /home/fluxloop
COPY --from=rootfs --chown=65532:65532 /rootfs/work /work
COPY --from=bin /fluxloop /usr/local/bin/fluxloop
ENV PATH=/usr/local/bin \
    HOME=/home/fluxloop
USER 65532:65532
WORKDIR /work
LABEL org.opencontainers.image.title="fluxloop" \
      org.opencontainers.image.description="FluxLoop CLI: pull scenarios, run your agent, upload results" \
      org.opencontainers.image.source="https://github.com/fluxloop/fluxloop-rs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["fluxloop"]
CMD ["--help"]
