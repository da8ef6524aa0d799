// Where the anvil binary is: shared by the fleet runner and scripts/anvil.mjs.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * ANVIL_BIN, else the platform package of @foundry-rs/anvil (resolved through packages/chains, as
 * packages/chains does it), else the newest version pnpm's store folder holds; undefined when none.
 */
export function anvilBinary(repoRoot) {
  if (process.env.ANVIL_BIN) return process.env.ANVIL_BIN;
  const platform = `${process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  const bin = (pkgJson) => join(dirname(pkgJson), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  try {
    // The platform package is an optional dependency of @foundry-rs/anvil, itself a dependency of
    // packages/chains: with pnpm's isolated layout only that chain of requires finds it.
    const wrapper = createRequire(join(repoRoot, 'packages', 'chains', 'package.json')).resolve('@foundry-rs/anvil/package.json');
    const found = bin(createRequire(wrapper).resolve(`@foundry-rs/anvil-${platform}/package.json`));
    if (existsSync(found)) return found;
  } catch {
    // fall through to the store folder
  }
  const store = join(repoRoot, 'node_modules', '.pnpm');
  const prefix = `@foundry-rs+anvil-${platform}@`;
  const versions = existsSync(store) ? readdirSync(store).filter((d) => d.startsWith(prefix)) : [];
  versions.sort((x, y) => y.localeCompare(x, 'en', { numeric: true }));
  for (const dir of versions) {
    const found = bin(join(store, dir, 'node_modules', '@foundry-rs', `anvil-${platform}`, 'package.json'));
    if (existsSync(found)) return found;
  }
  return undefined;
}
