// Writes the API documents from the schemas: docs/asyncapi.json (the message API) and docs/openapi.json
// (the webhook HTTP intake). Run with `pnpm asyncapi` (after `pnpm build`).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildAsyncApi } from '../src/index.js';
import { buildOpenApi } from '../src/openapi.js';
import pkg from '../package.json' with { type: 'json' };

for (const [name, doc] of [
  ['asyncapi.json', buildAsyncApi(pkg.version)],
  ['openapi.json', buildOpenApi(pkg.version)],
] as const) {
  const target = fileURLToPath(new URL(`../../../docs/${name}`, import.meta.url));
  writeFileSync(target, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`wrote ${target}`);
}
