# The server's container image, built by `cargo xtask image`.
#
# Stages: cargo-chef plans and compiles the dependencies once (they change
# rarely), the server is compiled on top of them, and the runtime is distroless
# Debian 13: no shell, no package manager, a non-root user.
#
# There is no `# syntax=` line on purpose: the built-in frontend already
# supports cache mounts, and a frontend image cannot be pulled without a
# registry.

# The base images, replaceable with a mirror's. The builder pins the toolchain
# of rust-toolchain.toml and must keep CARGO_HOME at /usr/local/cargo, as the
# official Rust images do. `cargo xtask image --offline` points all three at
# images it makes locally.
ARG BUILDER_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot
# Vendored crate sources and a cargo configuration that replaces crates.io with
# them. Mounted at /.cargo, where cargo reads it as the configuration of every
# directory below /. The default, an empty image, leaves cargo on crates.io.
ARG VENDOR_IMAGE=scratch

FROM ${VENDOR_IMAGE} AS vendor

FROM ${BUILDER_IMAGE} AS chef
# Used only when the builder has no cargo-chef (the official Rust images).
ARG CARGO_CHEF_VERSION=0.1.78
WORKDIR /app
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    command -v cargo-chef >/dev/null \
    || cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"

# What is built: `cargo xtask image` passes `package` and `binary` from
# `[workspace.metadata.xtask]`.
ARG PACKAGE=server
ARG BINARY=server

# The recipe lists only what the binary's build depends on, so changes to the
# xtask never reach the cook stage.
FROM chef AS planner
ARG BINARY
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    cargo chef prepare --recipe-path recipe.json --bin "${BINARY}"

# Exactly the flags of the build stage below, so that it recompiles nothing
# but the server itself.
FROM chef AS cook
ARG PACKAGE
ARG BINARY
ARG PROFILE=release
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo chef cook --locked --profile "${PROFILE}" --package "${PACKAGE}" --bin "${BINARY}" \
        --recipe-path recipe.json

FROM cook AS build
# `cargo xtask image --optimize` sets PROFILE=size and UPX_PACK=true. (Not
# `UPX`: upx reads its default options from that environment variable.)
ARG UPX_PACK=false
COPY . .
# The profile `release` writes to target/release, `size` to target/size.
# UPX comes from the builder; the official Rust images lack it, so it is
# installed here, pinned to Debian 13's version, only when asked for.
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --locked --profile "${PROFILE}" --package "${PACKAGE}" --bin "${BINARY}" \
    && install -D -m 0755 "target/${PROFILE}/${BINARY}" /out/server \
    && echo "server binary: $(wc -c </out/server) bytes as built" \
    && strip /out/server \
    && echo "server binary: $(wc -c </out/server) bytes stripped" \
    && if [ "${UPX_PACK}" = true ]; then \
         command -v upx >/dev/null \
         || { apt-get update && apt-get install -y --no-install-recommends upx-ucl=4.2.4-1.1; }; \
         upx --best --no-progress /out/server \
         && echo "server binary: $(wc -c </out/server) bytes packed with UPX"; \
       fi \
    && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
ARG BINARY
COPY --from=build /out/server /usr/local/bin/${BINARY}
# The SQLite database lives in a volume owned by the runtime user. The runtime
# has no shell to create it, so the directory comes from the build stage.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data
ENV DATABASE_URL=sqlite:///data/server.db
USER 65532:65532
EXPOSE 8080
STOPSIGNAL SIGTERM
# The exec form takes no build arguments, so these two name the binary
# literally; a test holds them to the manifest's `binary`.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/server", "--health-check"]
ENTRYPOINT ["/usr/local/bin/server"]

# Last, so that a new revision changes the image's configuration only.
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=""
ARG CREATED=""
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.title="server"
