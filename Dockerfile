# syntax=docker/dockerfile:1
# The one image of every role: `docker run IMAGE api` (or realtime, worker --queues ...,
# scheduler, migrate). Built in three stages: the dependency graph alone (cargo-chef), so
# that a change to our code reuses the compiled dependencies layer; the release binary;
# a small Debian runtime with ffmpeg (the media worker) and CA certificates, as a non-root
# user. Validated in CI by hadolint (deploy/check-deploy.sh); no Docker engine runs there.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# jemalloc (the binary's allocator) builds with make; the slim image has gcc only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
COPY --from=planner /src/recipe.json recipe.json
# The dependencies only: cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --bin watch-party --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin watch-party \
 && install -D -m 0755 target/release/watch-party /out/watch-party

FROM debian:bookworm-slim AS runtime
# ffmpeg/ffprobe for the media worker; CA certificates for SMTP, S3, FCM and APNs over TLS;
# tini reaps the ffmpeg children and passes SIGTERM on, so each role drains as documented.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates ffmpeg tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 watchparty \
 && useradd --system --uid 10001 --gid watchparty --home-dir /var/lib/watch-party --create-home watchparty
COPY --from=builder /out/watch-party /usr/local/bin/watch-party
USER 10001:10001
WORKDIR /var/lib/watch-party
ENV BIND_ADDR=0.0.0.0:8000 \
    OPS_BIND_ADDR=0.0.0.0:9100 \
    LOG_FORMAT=json \
    STORAGE_DIR=/var/lib/watch-party/storage \
    EMAIL_FILE_DIR=/var/lib/watch-party/mail
EXPOSE 8000 9100
# /health of the role in this container (OPS_BIND_ADDR, else BIND_ADDR): liveness only.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/watch-party", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/watch-party"]
CMD ["api"]
