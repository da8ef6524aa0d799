#!/usr/bin/env node
// Container health check: exit 0 when the service's probe answers 2xx, else 1.
//   node scripts/healthcheck.mjs [path=/ready]     (port: HTTP_PORT; host: HEALTHCHECK_HOST or 127.0.0.1)
// The runtime image (node:20-bookworm-slim) has no curl or wget; node is always there.
const path = process.argv[2] ?? '/ready';
const port = process.env.HTTP_PORT;
if (!port) {
  console.error('healthcheck: HTTP_PORT is not set');
  process.exit(1);
}
const host = process.env.HEALTHCHECK_HOST ?? '127.0.0.1';
try {
  const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(2500) });
  const body = await res.text();
  if (!res.ok) console.error(`healthcheck: ${path} answered ${res.status} ${body.slice(0, 500)}`);
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  console.error(`healthcheck: ${path}: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
