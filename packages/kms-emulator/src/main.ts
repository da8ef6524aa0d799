#!/usr/bin/env node
// The KMS emulator as a process (NOT FOR PRODUCTION): `node packages/kms-emulator/dist/main.js`.
// Env: KMS_EMULATOR_PORT (default 9011), KMS_EMULATOR_HOST (default 127.0.0.1),
// KMS_EMULATOR_DATA_DIR (default .fleet/kms-emulator), KMS_EMULATOR_PENDING_MS (default 50).
import { startKmsEmulator } from './server.js';

function line(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}) {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), service: 'kms-emulator', msg, ...fields })}\n`);
}

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535 * 1000) {
    line('error', `invalid ${name}: expected a non-negative integer`, { value: raw });
    process.exit(2);
  }
  return n;
}

const emulator = await startKmsEmulator({
  port: intEnv('KMS_EMULATOR_PORT', 9011),
  host: process.env.KMS_EMULATOR_HOST || '127.0.0.1',
  dataDir: process.env.KMS_EMULATOR_DATA_DIR || '.fleet/kms-emulator',
  pendingMs: intEnv('KMS_EMULATOR_PENDING_MS', 50),
  log: line,
}).catch((err: unknown) => {
  // A port in use or an unreadable data directory: one clear line and a non-zero exit.
  line('error', 'kms emulator failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
line('info', 'kms emulator listening', { endpoint: emulator.endpoint });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    line('info', 'kms emulator stopping', { signal });
    void emulator.stop().then(() => {
      line('info', 'kms emulator stopped');
      process.exit(0);
    });
  });
}
