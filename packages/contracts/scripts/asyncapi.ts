// Writes docs/asyncapi.json from the schemas. Run with `pnpm asyncapi` (after `pnpm build`).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildAsyncApi } from '../src/index.js';
import pkg from '../package.json' with { type: 'json' };

const target = fileURLToPath(new URL('../../../docs/asyncapi.json', import.meta.url));
writeFileSync(target, `${JSON.stringify(buildAsyncApi(pkg.version), null, 2)}\n`);
console.log(`wrote ${target}`);
