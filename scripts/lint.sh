#!/usr/bin/env bash
# The lint gate (`pnpm lint`, run by scripts/test.sh after the type-check): every step runs, then one
# line names the steps that failed and how to fix them. Exit code 1 when any step failed.
#   biome    lint rules and formatting (biome.json)
#   promises floating and misused promises, with type information (eslint.config.js)
#   unused   unused files, exports, types and dependencies in every workspace (knip.json)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
failed=()
for step in biome promises unused; do
  if ! pnpm --silent "lint:$step"; then failed+=("$step"); fi
done
if ((${#failed[@]})); then
  echo "lint: FAILED: ${failed[*]} (see above). Formatting and safe fixes: pnpm exec biome check --write ." >&2
  exit 1
fi
echo "lint: ok (biome, promises, unused)"
