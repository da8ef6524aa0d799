# One image for every service of the fleet; the command picks the service:
#   docker run ... wallet-fleet node services/audit/dist/main.js
# (docker-compose.yml and infra/k8s/ do exactly that). Configuration comes from the environment only.

FROM node:20-bookworm-slim AS base
# corepack cannot verify pnpm's registry signatures in some networks; npm installs it reliably.
RUN npm install -g pnpm@10 && npm cache clean --force
WORKDIR /app

# --- build: all dependencies, compile, then keep production dependencies only ----------------------
FROM base AS build
# `pnpm fetch` needs the lockfile alone, so this (slow) layer stays cached until dependencies change,
# whatever happens to the package.json files.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --offline --frozen-lockfile
RUN pnpm build
# pnpm prune does not work across a workspace: reinstall with --prod from the store fetched above.
RUN find . -name node_modules -type d -prune -exec rm -rf {} + \
 && pnpm install --offline --frozen-lockfile --prod \
 && find . -name '*.tsbuildinfo' -delete

# --- runtime ---------------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
# Without a command the image runs the whole fleet in one container (handy for a demo); deployments
# run one service per container.
CMD ["node", "scripts/fleet.mjs"]
