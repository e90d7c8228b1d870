# syntax=docker/dockerfile:1.7
# Tweedie, CPU image: the embedded default (TF.js on the wasm backend, jobs in memory, no native TensorFlow).
#   docker build -t tweedie .
#   docker run --rm -p 8080:8080 tweedie
# The same image runs the scale-out worker with: docker run tweedie node dist/src/worker.js

ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: full dependencies, compile TypeScript ------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Lockfile first, so the dependency layer is reused while only sources change.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
# Optional parts of the context may be absent from a fresh clone (git keeps no empty folders, the console may be
# unbuilt): make them exist so the runtime stage can copy them unconditionally.
RUN npm run build && mkdir -p models web/dist

# ---- runtime: production dependencies, compiled output, models ----------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM to node (graceful shutdown) and reaps the compute pool's zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    TFJS_BACKEND=wasm \
    PORT=8080 \
    HOST=0.0.0.0 \
    MODELS_DIR=/app/models
WORKDIR /app
COPY package.json package-lock.json ./
# sharp and the wasm backend come as prebuilt packages: no compiler is needed here.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
# Files stay owned by root and the process runs as `node`: the application cannot rewrite itself or its models.
COPY --from=build /app/dist ./dist
COPY --from=build /app/models ./models
COPY --from=build /app/schema.graphql ./schema.graphql
COPY --from=build /app/web/dist ./web/dist
USER node
EXPOSE 8080
# No curl in the slim image: node itself asks /livez (liveness only; readiness is for the orchestrator to probe).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/livez', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/server.js"]
