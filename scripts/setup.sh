#!/usr/bin/env bash
# Brings a checkout to "ready to run": pnpm, dependencies, build, and the backing services answering.
# Idempotent and fast when everything is in place (one `tsc -b` that finds nothing to do, a few probes).
# Used by scripts/fleet.sh and scripts/test.sh; safe to run by hand.
#
# Environment:
#   AMQP_URL, RABBITMQ_MANAGEMENT_URL, DATABASE_URL, REDIS_URL  a service whose URL names another host is
#       used as it is (probed, never started here)
#   BROKER_PASSWORD_<ROLE>  local password of a role's broker user (default: the role's name)
#   DATABASE_PASSWORD_<ROLE>  local password of a database role, e.g. DATABASE_PASSWORD_AUDIT_RUNTIME (default: the role's name)
#   SETUP_WAIT_SECONDS  how long to wait for each backing service to answer (default 60)
#   SETUP_SKIP_BUILD=1  skip `pnpm build` (the caller builds)
#   CI=true             print a summary of the backing services (started here, already running, external)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WAIT_SECONDS="${SETUP_WAIT_SECONDS:-60}"
SUMMARY=()

say() { printf 'setup: %s\n' "$*" >&2; }
die() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

# --- node ----------------------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is missing: install Node.js >= 20.19 (e.g. from nodesource; Debian 12's own nodejs package is 18, too old)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  die "Node.js >= 20.19 is required, found $(node -v)"

# --- pnpm ------------------------------------------------------------------------------------------
# corepack cannot fetch pnpm on this kind of machine (the registry metadata has no signatures it
# accepts), so pnpm comes from npm itself.
if ! command -v pnpm >/dev/null 2>&1; then
  command -v npm >/dev/null 2>&1 || die "npm is missing: install Node.js >= 20.19 (with npm) first"
  say "pnpm is missing: npm install -g pnpm@10"
  npm install -g --no-fund --no-audit pnpm@10 >&2 || die "could not install pnpm (npm install -g pnpm@10 failed; is the npm registry reachable and the global prefix writable?)"
  hash -r
  if ! command -v pnpm >/dev/null 2>&1; then
    # The global bin folder may not be on PATH (e.g. a user prefix).
    PATH="$(npm prefix -g 2>/dev/null)/bin:$PATH"
    export PATH
    command -v pnpm >/dev/null 2>&1 || die "pnpm was installed but is not on PATH (add \$(npm prefix -g)/bin to PATH)"
  fi
fi

# --- dependencies ----------------------------------------------------------------------------------
# pnpm writes node_modules/.pnpm/lock.yaml on every install: it is older than the lockfile exactly when
# the lockfile changed since (a pull, a checkout of another branch).
if [[ ! -f node_modules/.pnpm/lock.yaml || pnpm-lock.yaml -nt node_modules/.pnpm/lock.yaml ]]; then
  say "installing dependencies (pnpm install --frozen-lockfile)"
  pnpm install --frozen-lockfile --reporter=append-only >&2 || die "pnpm install --frozen-lockfile failed (if a package.json changed, run pnpm install and commit pnpm-lock.yaml)"
fi

# --- build -----------------------------------------------------------------------------------------
if [[ "${SETUP_SKIP_BUILD:-}" != "1" ]]; then
  # tsc -b is incremental: this takes about a second when nothing changed.
  pnpm --silent build >&2 || die "pnpm build failed (see the TypeScript errors above)"
fi

# --- promtool -------------------------------------------------------------------------------------
# The alert rules' unit tests (test/e2e/alerts.test.ts) run `promtool test rules`; Debian's prometheus
# package ships it. Installed where apt works (root, Debian); elsewhere that test fails naming the package.
if ! command -v promtool >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "promtool is missing: apt-get install prometheus"
    # The package would start a Prometheus daemon on :9090 where an init system runs: forbid service
    # starts for the install (policy-rc.d), then disable the unit, so only the promtool binary is used.
    POLICY_RC=/usr/sbin/policy-rc.d
    POLICY_RC_OURS=0
    if [[ ! -e $POLICY_RC ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC" && chmod +x "$POLICY_RC" && POLICY_RC_OURS=1
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >&2 ||
      say "warning: apt-get install prometheus failed; the alert rule tests will fail until promtool is installed"
    [[ $POLICY_RC_OURS -eq 1 ]] && rm -f "$POLICY_RC"
    if [[ -d /run/systemd/system ]]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
    hash -r
  else
    say "warning: promtool is missing (apt-get install prometheus): the alert rule tests will fail"
  fi
fi

# --- backing services ------------------------------------------------------------------------------
# host and port of a URL (defaults when the variable is unset), e.g. "127.0.0.1 5672".
host_port() {
  node -e '
    const [url, port] = process.argv.slice(1);
    const u = new URL(url);
    console.log((u.hostname || "127.0.0.1").replace(/^\[|\]$/g, ""), u.port || port);
  ' "$1" "$2"
}
is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" || "$1" == "0.0.0.0" ]]; }

# wait_for <name> <probe command...>: polls until the probe succeeds or WAIT_SECONDS pass.
wait_for() {
  local name="$1"
  shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
  say "$name answers"
}

probe() { node "$ROOT/scripts/probe.mjs" "$@"; }

# ensure <name> <probe...> -- <start command...>
# Probes; when the service is local, installed and down, starts it; then waits until it answers.
# SERVICE_HOST decides whether it is ours to start; INSTALL_HINT says how to get it.
ensure() {
  local name="$1"
  shift
  local probe_cmd=() start_cmd=()
  while [[ "$1" != "--" ]]; do
    probe_cmd+=("$1")
    shift
  done
  shift
  start_cmd=("$@")
  if "${probe_cmd[@]}" >/dev/null 2>&1; then
    if is_local "$SERVICE_HOST"; then SUMMARY+=("$name: already running ($SERVICE_HOST:$SERVICE_PORT)"); else SUMMARY+=("$name: external ($SERVICE_HOST:$SERVICE_PORT)"); fi
    return 0
  fi
  if ! is_local "$SERVICE_HOST"; then
    say "$name at $SERVICE_HOST:$SERVICE_PORT does not answer yet (external: not started here); waiting up to ${WAIT_SECONDS}s"
    wait_for "$name" "${probe_cmd[@]}" || die "$name at $SERVICE_HOST:$SERVICE_PORT did not answer within ${WAIT_SECONDS}s"
    SUMMARY+=("$name: external ($SERVICE_HOST:$SERVICE_PORT)")
    return 0
  fi
  command -v "${start_cmd[0]}" >/dev/null 2>&1 || die "$name is not running on $SERVICE_HOST:$SERVICE_PORT and not installed: $INSTALL_HINT"
  say "starting $name: ${start_cmd[*]@Q}"
  # A failed start is not final: another set-up running at the same time may have started it first.
  "${start_cmd[@]}" >&2 || say "warning: ${start_cmd[*]} failed; waiting to see whether $name answers anyway"
  STARTED+=("$name")
  PENDING+=("$name")
  return 0
}

STARTED=()
PENDING=()

# RabbitMQ
read -r RABBIT_HOST RABBIT_PORT < <(host_port "${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}" 5672)
SERVICE_HOST=$RABBIT_HOST SERVICE_PORT=$RABBIT_PORT \
  INSTALL_HINT="apt-get install rabbitmq-server (or set AMQP_URL to a reachable broker)" \
  ensure rabbitmq probe amqp "$RABBIT_HOST" "$RABBIT_PORT" -- rabbitmq-server -detached

# PostgreSQL: the newest installed cluster named main (Debian's layout: /etc/postgresql/<version>/main).
PG_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
read -r PG_HOST PG_PORT < <(host_port "$PG_URL" 5432)
PG_VERSION="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -n "$PG_VERSION" ]]; then
  PG_START=(pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start)
else
  PG_START=(pg_ctlcluster-not-installed)
fi
SERVICE_HOST=$PG_HOST SERVICE_PORT=$PG_PORT \
  INSTALL_HINT="apt-get install postgresql (or set DATABASE_URL to a reachable server)" \
  ensure postgresql probe postgres "$PG_URL" -- "${PG_START[@]}"

# Redis: no persistence; it holds rate-limit windows and caches only.
read -r REDIS_HOST REDIS_PORT < <(host_port "${REDIS_URL:-redis://127.0.0.1:6379}" 6379)
SERVICE_HOST=$REDIS_HOST SERVICE_PORT=$REDIS_PORT \
  INSTALL_HINT="apt-get install redis-server (or set REDIS_URL to a reachable Redis)" \
  ensure redis probe redis "$REDIS_HOST" "$REDIS_PORT" -- \
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no

# The services were started together above; now wait for each (RabbitMQ takes the longest, ~5-10 s).
for name in "${PENDING[@]}"; do
  case "$name" in
    rabbitmq) wait_for rabbitmq probe amqp "$RABBIT_HOST" "$RABBIT_PORT" || die "RabbitMQ did not answer on $RABBIT_HOST:$RABBIT_PORT within ${WAIT_SECONDS}s (see /var/log/rabbitmq/)" ;;
    postgresql) wait_for postgresql probe postgres "$PG_URL" || die "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s (see /var/log/postgresql/)" ;;
    redis) wait_for redis probe redis "$REDIS_HOST" "$REDIS_PORT" || die "Redis did not answer on $REDIS_HOST:$REDIS_PORT within ${WAIT_SECONDS}s" ;;
  esac
  SUMMARY+=("$name: started by setup")
done

# The database of DATABASE_URL (the tests' `test` by default) must exist and let the user in; each
# service then creates its own schema in it through its migrations.
set +e
PG_DB_ERROR="$(probe postgres-db "$PG_URL" 2>&1)"
PG_DB_STATUS=$?
set -e
if [[ $PG_DB_STATUS -eq 3 ]] && is_local "$PG_HOST"; then
  PG_DB="$(node -e 'const u = new URL(process.argv[1]); console.log(decodeURIComponent(u.pathname.slice(1)))' "$PG_URL")"
  PG_USER="$(node -e 'const u = new URL(process.argv[1]); console.log(decodeURIComponent(u.username) || "postgres")' "$PG_URL")"
  say "creating database $PG_DB (createdb -h $PG_HOST -p $PG_PORT -U $PG_USER $PG_DB)"
  createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" >&2 || die "could not create database $PG_DB"
elif [[ $PG_DB_STATUS -eq 4 ]]; then
  die "PostgreSQL refused the login of DATABASE_URL ($PG_DB_ERROR): create that role, or fix the password in DATABASE_URL; for local development pg_hba.conf may trust loopback ('host all all 127.0.0.1/32 trust', then pg_ctlcluster <version> main reload)"
elif [[ $PG_DB_STATUS -ne 0 ]]; then
  die "PostgreSQL at $PG_HOST:$PG_PORT: $PG_DB_ERROR"
fi

# The RabbitMQ management API: tests create a vhost per suite and close connections through it.
read -r MGMT_HOST MGMT_PORT < <(host_port "${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}" 15672)
if ! probe http "$MGMT_HOST" "$MGMT_PORT" >/dev/null 2>&1; then
  if is_local "$MGMT_HOST" && is_local "$RABBIT_HOST"; then
    # A broker that was just started opens its management listener a moment after AMQP; only
    # enable the plugin when it is really off (enabling is idempotent but takes a second or two).
    if ! WAIT_SECONDS=5 wait_for "rabbitmq management" probe http "$MGMT_HOST" "$MGMT_PORT"; then
      command -v rabbitmq-plugins >/dev/null 2>&1 || die "the RabbitMQ management API does not answer on :$MGMT_PORT and rabbitmq-plugins is missing"
      say "enabling the RabbitMQ management plugin (rabbitmq-plugins enable rabbitmq_management)"
      rabbitmq-plugins enable rabbitmq_management >&2 || die "rabbitmq-plugins enable rabbitmq_management failed"
      wait_for "rabbitmq management" probe http "$MGMT_HOST" "$MGMT_PORT" ||
        die "the RabbitMQ management API did not answer on $MGMT_HOST:$MGMT_PORT within ${WAIT_SECONDS}s"
      SUMMARY+=("rabbitmq management: enabled by setup ($MGMT_HOST:$MGMT_PORT)")
    else
      SUMMARY+=("rabbitmq management: answering ($MGMT_HOST:$MGMT_PORT)")
    fi
  else
    wait_for "rabbitmq management" probe http "$MGMT_HOST" "$MGMT_PORT" ||
      die "the RabbitMQ management API at $MGMT_HOST:$MGMT_PORT does not answer (external: enable rabbitmq_management there)"
    SUMMARY+=("rabbitmq management: external ($MGMT_HOST:$MGMT_PORT)")
  fi
else
  SUMMARY+=("rabbitmq management: answering ($MGMT_HOST:$MGMT_PORT)")
fi

# The fleet's broker users (one per service and external role, infra/rabbitmq/definitions.json): the
# fleet runner connects each service as its own user. Local brokers only; passwords
# BROKER_PASSWORD_<ROLE>, else the role's name (development convention, see scripts/broker-users.mjs).
if is_local "$RABBIT_HOST" && is_local "$MGMT_HOST"; then
  node "$ROOT/scripts/broker-users.mjs" >/dev/null || die "could not create the fleet's broker users (node scripts/broker-users.mjs)"
  SUMMARY+=("rabbitmq users: one per role (infra/rabbitmq/definitions.json), development approvers approver-1, approver-2")
fi

# The fleet's database roles (two per service: <service>_migration owns the schema and migrates,
# <service>_runtime gets only the migrations' grants): the fleet runner connects each service with
# its own. Local servers only; passwords DATABASE_PASSWORD_<ROLE>, else the role's name
# (development convention, see scripts/database-roles.mjs). In the fleet's database: DATABASE_URL's,
# else the services' default `postgres`.
if is_local "$PG_HOST"; then
  node "$ROOT/scripts/database-roles.mjs" >/dev/null || die "could not create the fleet's database roles (node scripts/database-roles.mjs)"
  SUMMARY+=("postgresql roles: a migration and a runtime role per service")
fi

if [[ "${CI:-}" == "true" ]]; then
  say "backing services:"
  for line in "${SUMMARY[@]}"; do say "  $line"; done
fi
