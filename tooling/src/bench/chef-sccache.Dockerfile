# `cargo xtask bench`'s "chef + sccache" alternative: cargo-chef with sccache
# as cargo-chef's README shows them together, sccache's local cache in a
# BuildKit cache mount. sccache is built from crates.io on the host (the
# builder has no network) and sent in the context. Runtime settings match
# the project's image.
ARG BUILDER_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim
# The crates, vendored: the benchmark builds every variant offline.
ARG VENDOR_IMAGE=scratch

FROM ${VENDOR_IMAGE} AS vendor

FROM ${BUILDER_IMAGE} AS chef
COPY .bench-tools/sccache /usr/local/bin/sccache
ENV RUSTC_WRAPPER=/usr/local/bin/sccache \
    SCCACHE_DIR=/sccache
WORKDIR /app

FROM chef AS planner
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/sccache,sharing=locked \
    cargo chef cook --release --recipe-path recipe.json --package server --bin server
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/sccache,sharing=locked \
    cargo build --release --package server --bin server

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=builder /app/target/release/server /usr/local/bin/server
ENV DATABASE_URL=sqlite:///data/server.db
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/server", "--health-check"]
ENTRYPOINT ["/usr/local/bin/server"]
