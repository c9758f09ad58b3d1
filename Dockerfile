# syntax=docker/dockerfile:1
#
# The Stakegraph gateway: `stakegraph serve` on 0.0.0.0:8080, as a non-root user, with the embedded SQLite store
# under the /data volume unless STAKEGRAPH_STORE=neo4j. See docs/docker.md.
#
#   docker build -t stakegraph .                       # BuildKit (the default since Docker 23; else DOCKER_BUILDKIT=1)
#   docker run --rm -p 8080:8080 -e STAKEGRAPH_API_KEYS=admin:<a long random key> -v stakegraph-data:/data stakegraph

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build: the release binary, exactly as the README builds it -------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /build
# The context is an allowlist (.dockerignore): the manifest and lock file, src/ (the SQLite migrations are
# include_str!'d from it) and every directory that holds a Cargo target. Cargo refuses to parse the manifest when
# a target without an explicit path is missing (the [[bench]]es in benches/), so those come too.
COPY . .
# No OpenSSL: TLS (Neo4j Aura over bolt+s / neo4j+s) goes through rustls, so no pkg-config or libssl-dev here.
# The registry and target caches survive between builds, so a source change recompiles only this crate. The
# release profile keeps line tables (debug = 1) for profiling; the image keeps the symbols only.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked --bin stakegraph \
    && install -D -m 0755 target/release/stakegraph /out/stakegraph \
    && strip --strip-debug /out/stakegraph

# ---- runtime: Debian slim, CA certificates (TLS to Neo4j Aura), a non-root user ---------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stakegraph \
    && useradd --system --uid 10001 --gid stakegraph --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin stakegraph \
    && install -d -o stakegraph -g stakegraph -m 0750 /data
COPY --from=build /out/stakegraph /usr/local/bin/stakegraph

ENV STAKEGRAPH_LISTEN=0.0.0.0:8080 \
    STAKEGRAPH_DB=/data/stakegraph.db \
    RUST_LOG=info
# The embedded store's database file (STAKEGRAPH_STORE=sqlite, the default); a fresh named volume takes /data's
# ownership from the image, so the non-root user can write it.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# Healthy when /readyz answers 200, i.e. the store answers (no curl in the image: bash's /dev/tcp, on the port of
# STAKEGRAPH_LISTEN). /readyz needs no API key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${STAKEGRAPH_LISTEN##*:} && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == *' 200 '* ]]"]

# SIGTERM (docker stop) finishes the requests in flight, then exits.
ENTRYPOINT ["stakegraph"]
CMD ["serve"]
