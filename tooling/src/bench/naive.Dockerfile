# `cargo xtask bench`'s "naive" alternative: a plain multi-stage build, as a
# team writes it first. The whole workspace is copied and the service's
# package built with `cargo build --release`; no cargo-chef, no cache
# mounts, a Debian slim runtime. Its runtime settings (data volume, health check, entrypoint)
# match the project's image, so that only the build and the base differ.
ARG BUILDER_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim
# The crates, vendored: the benchmark builds every variant offline.
ARG VENDOR_IMAGE=scratch

FROM ${VENDOR_IMAGE} AS vendor

FROM ${BUILDER_IMAGE} AS build
WORKDIR /app
COPY . .
RUN --mount=type=bind,from=vendor,target=/.cargo \
    cargo build --release --locked --package server

FROM ${RUNTIME_IMAGE}
COPY --from=build /app/target/release/server /usr/local/bin/server
ENV DATABASE_URL=sqlite:///data/server.db
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/server", "--health-check"]
ENTRYPOINT ["/usr/local/bin/server"]
