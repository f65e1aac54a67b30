# `cargo xtask bench`'s "chef + target cache" alternative: cargo-chef as its
# README shows it, with BuildKit keeping `target/` between builds in a cache
# mount, so that a changed recipe recompiles only what changed. A cache
# mount is not part of the image: the binary is copied out of it in the
# same step. Runtime settings match the project's image.
ARG BUILDER_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim
# The crates, vendored: the benchmark builds every variant offline.
ARG VENDOR_IMAGE=scratch

FROM ${VENDOR_IMAGE} AS vendor

FROM ${BUILDER_IMAGE} AS chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/app/target \
    cargo chef cook --release --recipe-path recipe.json --package server --bin server
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    --mount=type=cache,target=/app/target \
    cargo build --release --package server --bin server \
    && cp target/release/server /usr/local/bin/server

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=builder /usr/local/bin/server /usr/local/bin/server
ENV DATABASE_URL=sqlite:///data/server.db
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/server", "--health-check"]
ENTRYPOINT ["/usr/local/bin/server"]
