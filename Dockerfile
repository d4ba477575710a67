# syntax=docker/dockerfile:1
#
# fluxloop container images.
#
#   docker build -t fluxloop .                  # minimal: the static binary only (default)
#   docker build --target shell -t fluxloop:shell .   # plus a BusyBox shell, for GitLab `script:` jobs
#
#   docker run --rm --user "$(id -u):$(id -g)" -e FLUXLOOP_API_KEY -v "$PWD:/work" \
#     fluxloop test --no-skip-upload --yes
#
# The binary is built from source for the musl target and is fully
# static; the CA roots are compiled into it, so the final image needs no
# /etc/ssl. Both images run as the numeric user 65532 with HOME=/home/fluxloop
# and WORKDIR /work. The release workflow builds from the released binaries
# instead (BINARY_FROM=dist, dist/docker/<arch>/fluxloop), so the image holds
# exactly the checksummed release asset.

# Base images are pinned by digest (a tag can be moved to other content);
# bump tag and digest together: `docker buildx imagetools inspect IMAGE:TAG`.
ARG BINARY_FROM=source

# --- the static binary: built from source here (default), or a release asset --
# One stage for both sources: podman/buildah cannot pick a stage by a build
# argument (`FROM bin-${BINARY_FROM}` fails there with "image not known").
FROM rust:1.89-slim-bookworm@sha256:d7fc7de78bb8c1469933aeecbf801314d30d7d6e9f0578bba4cfa285bfa37fe6 AS build
ARG BINARY_FROM
ARG TARGETARCH
WORKDIR /src
COPY . .
# hadolint ignore=DL3008
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    case "$BINARY_FROM" in \
      dist) install -D -m 0755 "dist/docker/${TARGETARCH}/fluxloop" /out/fluxloop ;; \
      source) \
        apt-get update -qq; \
        apt-get install -y -qq --no-install-recommends musl-tools; \
        rm -rf /var/lib/apt/lists/*; \
        target="$(uname -m)-unknown-linux-musl"; \
        rustup target add "$target"; \
        cargo build --release --locked -p fluxloop --target "$target"; \
        install -D -m 0755 "target/$target/release/fluxloop" /out/fluxloop ;; \
      *) echo "BINARY_FROM must be source or dist, not '$BINARY_FROM'" >&2; exit 1 ;; \
    esac; \
    /out/fluxloop --version

# --- the files a non-root user needs: passwd entry, home, work dir, /tmp ------
# Copied into the images as one tree (`COPY --from=rootfs /rootfs/ /`), so the
# directories keep their modes: /tmp 1777, and /home/fluxloop and /work 1777
# too, because `docker run --user "$(id -u):$(id -g)"` (what a bind-mounted
# workspace needs) runs as a uid the image cannot know.
FROM busybox:1.37-musl@sha256:fc6dddc4c44b1bfe37f41cae8e67d1693828e8f42a91862816d7953e2c9d3f23 AS rootfs
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/fluxloop /rootfs/work /rootfs/usr/local/bin \
 && echo 'root:x:0:0:root:/root:/sbin/nologin' >/rootfs/etc/passwd \
 && echo 'fluxloop:x:65532:65532:fluxloop:/home/fluxloop:/sbin/nologin' >>/rootfs/etc/passwd \
 && printf 'root:x:0:\nfluxloop:x:65532:\n' >/rootfs/etc/group \
 && chown 65532:65532 /rootfs/home/fluxloop /rootfs/work \
 && chmod 1777 /rootfs/tmp /rootfs/home/fluxloop /rootfs/work
COPY --from=build /out/fluxloop /rootfs/usr/local/bin/fluxloop

# --- shell variant: fluxloop + BusyBox sh, for CI `script:` jobs --------------
FROM busybox:1.37-musl@sha256:fc6dddc4c44b1bfe37f41cae8e67d1693828e8f42a91862816d7953e2c9d3f23 AS shell
COPY --from=rootfs /rootfs/ /
ENV HOME=/home/fluxloop
USER 65532:65532
WORKDIR /work
RUN fluxloop --version
CMD ["sh"]

# --- default: minimal image, the binary alone ---------------------------------
FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
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
