# Two images from one file:
#   - the default (last) stage, `runtime`: the production image. The services and the packages they
#     depend on, with production dependencies only: no development runtime (litesvm, anvil, the KMS
#     emulator), no test support, no fleet runner. One service per container, chosen by the command
#     (docker-compose.yml and infra/k8s/ give `node services/<name>/dist/main.js`) or by SERVICE:
#       docker run -e SERVICE=audit ... wallet-fleet
#   - `--target development`: the whole workspace, for the development runtimes of
#     infra/compose/dev-runtimes.yml (NOT FOR PRODUCTION).
# Configuration comes from the environment only.

FROM node:20-bookworm-slim AS base
# corepack cannot verify pnpm's registry signatures in some networks; npm installs it reliably.
RUN npm install -g pnpm@10 && npm cache clean --force
WORKDIR /app

# --- build: all dependencies, compile ---------------------------------------------------------------
FROM base AS build
# `pnpm fetch` needs the lockfile alone, so this (slow) layer stays cached until dependencies change,
# whatever happens to the package.json files.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --offline --frozen-lockfile
RUN pnpm build

# --- development: the whole workspace (development runtimes included) -------------------------------
FROM build AS development
RUN chown -R node:node /app
USER node
CMD ["node", "scripts/fleet.mjs"]

# --- production install: the services and what they depend on, production dependencies only ---------
FROM build AS production-install
# pnpm prune does not work across a workspace: reinstall from the store fetched above, selecting the
# services and the workspace packages of their `dependencies` (--filter-prod leaves devDependencies'
# packages out: the KMS emulator, the development runtimes and the test support), then drop every
# workspace folder the services do not run from.
RUN find . -name node_modules -type d -prune -exec rm -rf {} + \
 && pnpm install --offline --frozen-lockfile --prod --filter-prod "{./services/*}..." \
 && rm -rf packages/dev-runtimes packages/kms-emulator packages/testing packages/fleetctl test docs infra \
 && find scripts -mindepth 1 -not -name healthcheck.mjs -exec rm -rf {} + \
 && find . -name '*.tsbuildinfo' -delete

# --- runtime: the production image ------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=production-install --chown=node:node /app /app
USER node
# One service per container: the command names it, or SERVICE does. Never the whole fleet.
CMD ["sh", "-c", "case \"$SERVICE\" in audit|wallet|provisioning|webhooks|reconciliation) exec node \"services/$SERVICE/dist/main.js\" ;; *) echo 'set SERVICE to audit, wallet, provisioning, webhooks or reconciliation (or give the command node services/<name>/dist/main.js)' >&2; exit 64 ;; esac"]
