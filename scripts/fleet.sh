#!/usr/bin/env bash
# Runs the whole fleet in this terminal: set-up (pnpm, dependencies, build, backing services), then the
# development runtimes the services need (KMS emulator, Solana runtime, anvil: infra/dev-runtimes.json)
# and every service, each as its own process with prefixed, readable logs. Ctrl-C stops them all
# gracefully, the services first.
#   bash scripts/fleet.sh [--json]              FLEET_SERVICES=audit,wallet bash scripts/fleet.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec node scripts/fleet.mjs "$@"
