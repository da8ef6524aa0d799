#!/usr/bin/env bash
# Runs every test suite against the real RabbitMQ, PostgreSQL and Redis of this machine: set-up
# (pnpm, dependencies, build, backing services started if down), then mocha. Extra arguments go to
# mocha (e.g. --grep outbox). The exit code is mocha's; its last line is "N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# tsx runs tests without type-checking them: check them (and benchmarks, scripts) first.
pnpm --silent typecheck
pnpm --silent lint
exec pnpm --silent test:only "$@"
