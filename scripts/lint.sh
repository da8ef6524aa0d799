#!/usr/bin/env bash
# The lint gate (`pnpm lint`, run by scripts/test.sh after the type-check). Every step runs, then one
# line names the steps that failed and how to fix them; exit code 1 when any did.
#   rules     Biome's lint rules (biome.jsonc)
#   format    Biome's formatter, as a check (biome.jsonc)
#   promises  floating and misused promises, with type information (eslint.config.js)
#   unused    unused files, exports, types and dependencies in every workspace (knip.jsonc)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
failed=()
for step in rules format promises unused; do
  if ! pnpm --silent "lint:$step"; then failed+=("$step"); fi
done
if ((${#failed[@]})); then
  hint=""
  [[ " ${failed[*]} " == *" format "* ]] && hint=" Formatting: pnpm exec biome format --write ."
  echo "lint: FAILED: ${failed[*]} (findings above).$hint" >&2
  exit 1
fi
echo "lint: ok (rules, format, promises, unused)"
