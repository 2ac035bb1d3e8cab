# Switchyard image: immutable, tagged by git SHA (never `latest`). Build with `npm run image`.
# Stage 1 compiles TypeScript with the dev dependencies, then prunes them; the runtime stage
# copies only package.json, the pruned node_modules, dist/src and the health-check script.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Only src is compiled: the bench (also in tsconfig.build.json) is not part of the image.
RUN npm run build \
  && npm prune --omit=dev --no-audit --no-fund \
  && find node_modules -depth -type d -empty -delete
# Declared after the expensive steps so a new SHA reuses their cache.
ARG GIT_SHA
RUN test -n "${GIT_SHA}" || { echo 'build with --build-arg GIT_SHA=<git sha> (npm run image does)' >&2; exit 1; }

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root: the unprivileged `node` user can read but not change the code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY deploy/image/healthcheck.mjs ./healthcheck.mjs
USER node
# Proxy port and admin port (the admin API listens on 127.0.0.1 unless SWITCHYARD_ADMIN_LISTEN
# says otherwise, which needs SWITCHYARD_ADMIN_TOKEN).
EXPOSE 8080 9090
# Liveness only: /healthz on the admin address. No curl in the image; node does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]

ARG GIT_SHA
ARG VERSION=0.0.0
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://www.npmjs.com/package/switchyard-proxy
LABEL org.opencontainers.image.title="switchyard" \
  org.opencontainers.image.description="Traffic-switching reverse proxy: blue/green/canary routing" \
  org.opencontainers.image.licenses="MIT" \
  org.opencontainers.image.revision="${GIT_SHA}" \
  org.opencontainers.image.version="${VERSION}" \
  org.opencontainers.image.created="${CREATED}" \
  org.opencontainers.image.source="${SOURCE}"
# Reported by /healthz and /v1/state so every replica says which build it runs.
ENV SWITCHYARD_BUILD_SHA=${GIT_SHA}

# One proxy process uses one core. To use more in one container, give it a CPU limit and
# SWITCHYARD_WORKERS=auto: the worker count follows the cgroup quota (`--cpus 2` on a 32-core
# host: 2 workers), never the host's cores. docs/workers.md says when to prefer more replicas.
# Exec form: node is PID 1's exec target and gets SIGTERM itself (graceful shutdown, SPEC §4).
CMD ["node", "dist/src/main.js", "proxy"]
