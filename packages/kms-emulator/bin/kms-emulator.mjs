#!/usr/bin/env node
// The `kms-emulator` command (NOT FOR PRODUCTION). A committed file rather than a bin pointing into
// dist/: pnpm links bins at install, before `pnpm build` has made dist/, and warns "Failed to create
// bin" for every dependent when the target is missing.
try {
  await import('../dist/main.js');
} catch (e) {
  const err = /** @type {NodeJS.ErrnoException} */ (e);
  if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes('dist/main.js')) {
    process.stderr.write('kms-emulator: not built yet (run pnpm build)\n');
    process.exit(1);
  }
  throw e;
}
