# The service's container image, built by `cargo xtask image`.
#
# Stages: cargo-chef plans and compiles the dependencies once (they change
# rarely), the service is compiled on top of them, and the runtime is distroless
# Debian 13: no shell, no package manager, a non-root user.
#
# Nothing here names a service: what is built, its port and its paths come from
# `[workspace.metadata.xtask]`, which `cargo xtask image` passes as build
# arguments. The build context is worked out from `cargo metadata` too (the
# package and its path dependencies): `cargo xtask image` writes it as
# target/xtask/image/<package>.Dockerfile.dockerignore beside a copy of this
# file, <package>.Dockerfile.
#
# There is no `# syntax=` line on purpose: the built-in frontend already
# supports cache mounts, and a frontend image cannot be pulled without a
# registry.

# The base images, replaceable with a mirror's. The builder pins the toolchain
# of rust-toolchain.toml and must keep CARGO_HOME at /usr/local/cargo, as the
# official Rust images do. `cargo xtask image --offline` points all three at
# images it makes locally.
ARG BUILDER_IMAGE=rust:1.95.0-slim-trixie
# `minimal` names the stage below: the binaries' own closure instead.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot
# Vendored crate sources and a cargo configuration that replaces crates.io with
# them. Mounted at /.cargo, where cargo reads it as the configuration of every
# directory below /. The default, an empty image, leaves cargo on crates.io.
ARG VENDOR_IMAGE=scratch
# The platform the compiling stages run on: by default each target platform's
# own (emulated where it is foreign). `cargo xtask publish --platform` sets the
# host's when every platform it builds is of the host's architecture
# (`linux/amd64,linux/amd64/v2`): they share one compile, whose code runs on
# each of them.
ARG COMPILE_PLATFORM=$TARGETPLATFORM

# A variable, not a constant (DL3029): the target's platform unless set.
# hadolint ignore=DL3029
FROM --platform=${COMPILE_PLATFORM} ${VENDOR_IMAGE} AS vendor

# hadolint ignore=DL3029
FROM --platform=${COMPILE_PLATFORM} ${BUILDER_IMAGE} AS chef
# Used only when the builder lacks them (the official Rust images). cargo
# auditable builds the binaries with their crate list in a `.dep-v0` section,
# which trivy, syft, grype and osv-scanner read from the image.
ARG CARGO_CHEF_VERSION=0.1.78
ARG CARGO_AUDITABLE_VERSION=0.7.7
WORKDIR /app
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    { command -v cargo-chef >/dev/null \
      || cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"; } \
    && { command -v cargo-auditable >/dev/null \
      || cargo install --locked cargo-auditable --version "${CARGO_AUDITABLE_VERSION}"; }
# The manifest's `builder-packages`: what the service's build needs besides a
# C toolchain (`libssl-dev`, `protobuf-compiler`…). Installed here, before the
# dependencies are compiled, at the builder's suite's versions (DL3008), when
# the builder lacks them; `--offline`'s builder already has them. The list is
# split into words on purpose (SC2086).
ARG BUILDER_PACKAGES=""
# hadolint ignore=DL3008,SC2086
RUN missing=""; \
    for package in ${BUILDER_PACKAGES}; do \
      dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# What is built: `cargo xtask image` passes `package` and `binary` from
# `[workspace.metadata.xtask]`. No defaults, so that no service is assumed.
ARG PACKAGE
ARG BINARY

# The image's own tools, which come with the xtask, not from the workspace:
# the HEALTHCHECK probe, and `rootfs`, which lays out the minimal runtime.
# `cargo xtask image` writes their sources to target/xtask/image/tools/ as a
# workspace of their own; std only, so nothing is fetched. The probe is never
# packed with UPX: it runs every few seconds, and UPX would slow each start.
FROM chef AS tools
ARG PROFILE=release
COPY target/xtask/image/tools/ /tools/
RUN cargo auditable build --offline --profile "${PROFILE}" --manifest-path /tools/Cargo.toml \
    && install -D -m 0755 "/tools/target/${PROFILE}/healthcheck" /out/healthcheck \
    && install -D -m 0755 "/tools/target/${PROFILE}/rootfs" /out/rootfs

# The recipe lists only what the binary's build depends on, so changes to the
# xtask never reach the cook stage.
FROM chef AS planner
ARG PACKAGE
ARG BINARY
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    if [ -z "${PACKAGE}" ] || [ -z "${BINARY}" ]; then \
      echo "error: the PACKAGE and BINARY build arguments are required (cargo xtask image passes them)" >&2; \
      exit 1; \
    fi \
    && cargo chef prepare --recipe-path recipe.json --bin "${BINARY}"

# The flags of the build stage below, so that it recompiles nothing but the
# service itself. Not `--locked`: a recipe of one binary leaves out the
# workspace's other members, whose features the lock file may still carry, so
# cargo must be free to adjust the recipe's copy of it. The build is `--locked`.
FROM chef AS cook
ARG PACKAGE
ARG BINARY
ARG PROFILE=release
# The manifest's `build-env`, as shell-quoted `NAME='value'` words (the xtask
# quotes them): set for cargo in this stage and the next, and in neither
# image's configuration, so the runtime never sees them.
ARG BUILD_ENV=""
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    if [ -n "${BUILD_ENV}" ]; then eval "export ${BUILD_ENV}"; fi \
    && cargo chef cook --profile "${PROFILE}" --package "${PACKAGE}" --bin "${BINARY}" \
        --recipe-path recipe.json

FROM cook AS build
COPY . .
COPY --from=tools /out/ /opt/xtask-tools/
# The profile `release` writes to target/release, `size` to target/size.
# Only the build arguments declared so far reach this step, so the builds
# that differ in their runtime alone (`--runtime`, `runtime-extras`,
# `runtime-files`) share its compile of the service.
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    if [ -n "${BUILD_ENV}" ]; then eval "export ${BUILD_ENV}"; fi \
    && cargo auditable build --locked --profile "${PROFILE}" --package "${PACKAGE}" --bin "${BINARY}" \
    && install -D -m 0755 "target/${PROFILE}/${BINARY}" /out/root/usr/local/bin/service \
    && install -D -m 0755 /opt/xtask-tools/healthcheck /out/root/usr/local/bin/healthcheck \
    && echo "service binary: $(wc -c </out/root/usr/local/bin/service) bytes as built" \
    && strip /out/root/usr/local/bin/service /out/root/usr/local/bin/healthcheck \
    && echo "service binary: $(wc -c </out/root/usr/local/bin/service) bytes stripped"
# `cargo xtask image --optimize` sets PROFILE=size and UPX_PACK=true. (Not
# `UPX`: upx reads its default options from that environment variable.)
ARG UPX_PACK=false
# Packed beside the binary, in a step of its own: the builds that differ only
# in their runtime share it too, and `rootfs` below still reads the unpacked
# binary. UPX comes from the builder; the official Rust images lack it, so it
# is installed here, pinned to Debian 13's version, only when asked for.
RUN if [ "${UPX_PACK}" = true ]; then \
      command -v upx >/dev/null \
      || { apt-get update && apt-get install -y --no-install-recommends upx-ucl=4.2.4-1.1; }; \
      upx --best --no-progress -o /out/service.upx /out/root/usr/local/bin/service \
      && echo "service binary: $(wc -c </out/service.upx) bytes packed with UPX"; \
    fi
# `cargo xtask image --runtime minimal` sets it: the bundled `rootfs`
# lays out the binaries' ELF closure and dpkg records in /out/rootfs, from
# this stage's own files, before UPX hides what the service links.
ARG MINIMAL_ROOTFS=false
# The manifest's `runtime-extras`: Debian packages whose files join the
# minimal runtime (e.g. `ca-certificates tzdata`).
ARG MINIMAL_EXTRAS=""
# The manifest's `runtime-files`, as `from:to` words: laid out in /out/root
# beside the binaries (one layer for both), owned by root and read-only to
# the service.
ARG RUNTIME_FILES=""
# An extra the builder lacks is installed the same way as UPX, at the
# builder's suite's version (the manifest names packages, not versions:
# DL3008), and the list is split into words on purpose (SC2086, SC2046).
# Every file of /out gets one fixed time last. `rewrite-timestamp` only
# clamps times later than SOURCE_DATE_EPOCH, and a step taken from the cache
# keeps the times of the build that ran it: after a commit later than that
# build, a cached build and a no-cache one would differ in their times alone.
# A fixed time (1, as Nix uses: 0 reads as "unknown" to some tools) makes the
# layers the same for every commit that builds the same files.
# hadolint ignore=DL3008,SC2086,SC2046
RUN mkdir -p /out/rootfs \
    && if [ "${MINIMAL_ROOTFS}" = true ]; then \
         missing=""; \
         for package in ${MINIMAL_EXTRAS}; do \
           dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; \
         done; \
         if [ -n "$missing" ]; then \
           apt-get update && apt-get install -y --no-install-recommends $missing; \
         fi \
         && /opt/xtask-tools/rootfs /out/rootfs /out/root/usr/local/bin/service /out/root/usr/local/bin/healthcheck \
              $(for package in ${MINIMAL_EXTRAS}; do printf -- '--with %s ' "$package"; done); \
       fi \
    && if [ -e /out/service.upx ]; then \
         install -m 0755 /out/service.upx /out/root/usr/local/bin/service && rm /out/service.upx; \
       fi \
    && mkdir -p /out/data \
    && for pair in ${RUNTIME_FILES}; do \
         from="${pair%%:*}"; to="${pair#*:}"; \
         mkdir -p "/out/root$(dirname "$to")" \
         && cp -R "$from" "/out/root$to" \
         && chmod -R u+rwX,go+rX,go-w "/out/root$to" || exit 1; \
       done \
    && find /out -exec touch --no-dereference --date=@1 {} +

# The minimal runtime: nothing but what /out/rootfs holds.
FROM scratch AS minimal
COPY --from=build /out/rootfs/ /

FROM ${RUNTIME_IMAGE}
# From the manifest: `port`, `health-path` and `data-dir`.
ARG PORT=8080
ARG HEALTH_PATH=/health
ARG DATA_DIR=/data
# The exec-form ENTRYPOINT and HEALTHCHECK take no build arguments, so the
# service is installed at one path whatever its binary is called.
COPY --from=build /out/root/ /
# The service's data lives in a volume owned by the runtime user. The runtime
# has no shell to create it, so the directory comes from the build stage.
COPY --from=build --chown=65532:65532 /out/data ${DATA_DIR}
VOLUME ${DATA_DIR}
# DATA_DIR tells the service where its volume is; the HEALTHCHECK_ variables
# tell the probe what to ask.
ENV DATA_DIR=${DATA_DIR} \
    HEALTHCHECK_PORT=${PORT} \
    HEALTHCHECK_PATH=${HEALTH_PATH}
USER 65532:65532
# xtask: the manifest's `workdir` and `runtime-env` go here (`cargo xtask
# image` writes them into its copy of this file; none by default).
EXPOSE ${PORT}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]

# Last, so that a new revision changes the image's configuration only.
ARG BINARY
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=""
ARG CREATED=""
# Cargo.lock's and the manifests' digest: `cargo xtask sbom` compares it with
# the work tree's, committed or not.
ARG CRATES_DIGEST=""
LABEL dev.xtask.crates-digest="${CRATES_DIGEST}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.title="${BINARY}"
