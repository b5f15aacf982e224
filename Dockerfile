# Tranche: build the TypeScript once, ship dist/ with production dependencies only, run as a
# non-root user. `docker build -t tranche .`; compose.yaml runs it with PostgreSQL and MinIO.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# npm ci's prepare step runs this; it builds the console and the server only once their sources are here (below).
COPY scripts/prepare.mjs ./scripts/
RUN npm ci --workspaces=false --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# The back-office console (static files served at /console); its types come from the generated client.
COPY console ./console
COPY clients/typescript/src/schema.ts ./clients/typescript/src/
RUN npm run build:console

FROM node:22-bookworm-slim AS production-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY scripts/prepare.mjs ./scripts/
RUN npm ci --omit=dev --workspaces=false --no-audit --no-fund && npm cache clean --force

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=production-deps /app/node_modules ./node_modules
COPY package.json ./
COPY migrations ./migrations
COPY vendor ./vendor
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist
RUN mkdir -p /app/data /app/node_modules/.cache && chown node:node /app/data /app/node_modules/.cache
USER node
# The embedded database's pre-migrated template (node_modules/.cache/tranche): a first start on
# the embedded database copies it instead of running initdb (seconds, and ~500 MB it never returns).
RUN node dist/platform/db/embedded-template.js
EXPOSE 3000
# Readiness: the database answers and the process serves (HEALTH_PORT, else PORT). Six misses (a
# minute) make it unhealthy, which leaves room for the first migrations.
HEALTHCHECK --interval=10s --timeout=3s --retries=6 CMD ["node", "dist/healthcheck.js"]
# Exec form: node is PID 1 and receives SIGTERM itself (no shell, no npm in between).
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve"]
