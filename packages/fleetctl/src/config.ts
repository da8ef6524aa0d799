import { envVar, loadConfig } from '@wallet-fleet/service-kit';

/**
 * The services whose `/ready` `fleetctl health` asks, with the default HTTP ports of their own
 * config (README "Services and ports"); `<NAME>_HTTP_PORT` moves one, as it does for the fleet runner.
 */
const SERVICES = [
  { name: 'audit', port: 8081 },
  { name: 'wallet', port: 8082 },
  { name: 'provisioning', port: 8083 },
  { name: 'webhooks', port: 8084 },
  { name: 'reconciliation', port: 8085 },
] as const;

const shape = {
  /** The operator's broker user (`ops`; its local password is its name, see docs/operations.md). */
  AMQP_URL: envVar.url(['amqp', 'amqps'], 'amqp://ops:ops@127.0.0.1:5672'),
  RABBITMQ_MANAGEMENT_URL: envVar.url(['http', 'https'], 'http://guest:guest@127.0.0.1:15672'),
  /** Host of the services' HTTP ports (probes) and of the reconciliation service's admin listener (`POST /runs`). */
  FLEET_HTTP_HOST: envVar.string('127.0.0.1'),
  /** The reconciliation service's ADMIN_HTTP_PORT. */
  RECONCILIATION_ADMIN_PORT: envVar.port(9085),
  /** Sent as `Authorization: Bearer …` to the admin listener when set (its ADMIN_TOKEN). */
  ADMIN_TOKEN: envVar.string().optional(),
  FLEETCTL_TIMEOUT_MS: envVar.int({ min: 1, max: 600_000, default: 10_000 }),
  FLEETCTL_PROGRESS_MS: envVar.int({ min: 0, max: 3_600_000, default: 1_000 }),
  ...Object.fromEntries(SERVICES.map((s) => [`${s.name.toUpperCase()}_HTTP_PORT`, envVar.port(s.port)])),
};

export interface Config {
  amqpUrl: string;
  managementUrl: string;
  /** Per request, per HTTP call, and for connecting. */
  timeoutMs: number;
  /** Long runs (replay) print where they are at most this often, on stderr. */
  progressMs: number;
  /** Base URL (`http://host:port`) of each service's HTTP port. */
  services: Array<{ name: string; url: string }>;
  /** The reconciliation service's admin listener: base URL and bearer token (if any). */
  reconciliationAdmin: { url: string; token?: string };
}

/** @throws ConfigError naming every malformed variable (values never quoted). */
export function loadCliConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const c = loadConfig(shape, env) as Record<string, unknown>;
  const host = c.FLEET_HTTP_HOST as string;
  const base = (port: number) => `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const token = c.ADMIN_TOKEN as string | undefined;
  return {
    amqpUrl: c.AMQP_URL as string,
    managementUrl: c.RABBITMQ_MANAGEMENT_URL as string,
    timeoutMs: c.FLEETCTL_TIMEOUT_MS as number,
    progressMs: c.FLEETCTL_PROGRESS_MS as number,
    services: SERVICES.map((s) => ({ name: s.name, url: base(c[`${s.name.toUpperCase()}_HTTP_PORT`] as number) })),
    reconciliationAdmin: { url: base(c.RECONCILIATION_ADMIN_PORT as number), ...(token === undefined ? {} : { token }) },
  };
}

/** The vhost an AMQP URL names (`amqp://h/` and `amqp://h` both mean `/`). */
export function vhostOf(amqpUrl: string): string {
  const path = new URL(amqpUrl).pathname;
  return path === '' || path === '/' ? '/' : decodeURIComponent(path.slice(1));
}
