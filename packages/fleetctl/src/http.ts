import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { safeUrl } from '@wallet-fleet/service-kit';

/** A JSON answer over HTTP: the status and the parsed body (undefined when it is not JSON). */
export interface JsonAnswer {
  status: number;
  body: unknown;
}

/**
 * One HTTP call with a deadline; credentials in the URL go in an Authorization header, as does
 * `bearer` (`Authorization: Bearer …`).
 * @throws FleetError UNAVAILABLE (no answer: refused, reset, or past `timeoutMs`)
 */
export async function httpJson(method: 'GET' | 'POST', url: string, timeoutMs: number, bearer?: string): Promise<JsonAnswer> {
  const u = new URL(url);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  else if (u.username) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    u.username = '';
    u.password = '';
  }
  let res: Response;
  try {
    res = await fetch(u, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const why =
      (e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : ((e as Error & { cause?: Error }).cause?.message ?? (e as Error).message);
    throw new FleetError(ErrorCode.UNAVAILABLE, `${method} ${safeUrl(url)}: ${why}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}

/** A queue as the management API lists it (counts lag the broker by a few seconds). */
export interface QueueStats {
  name: string;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
}

/**
 * Every queue of `vhost`, from the RabbitMQ management API.
 * @throws FleetError UNAVAILABLE (API unreachable or refusing: wrong credentials, unknown vhost)
 */
export async function listQueues(managementUrl: string, vhost: string, timeoutMs: number): Promise<QueueStats[]> {
  const base = managementUrl.replace(/\/+$/, '');
  const url = `${base}/api/queues/${encodeURIComponent(vhost)}?columns=name,messages_ready,messages_unacknowledged,consumers`;
  const { status, body } = await httpJson('GET', url, timeoutMs);
  if (status !== 200 || !Array.isArray(body)) {
    throw new FleetError(ErrorCode.UNAVAILABLE, `RabbitMQ management API at ${safeUrl(base)} answered ${status} for vhost ${vhost}`);
  }
  return (body as Array<Partial<QueueStats>>).map((q) => ({
    name: String(q.name),
    messages_ready: q.messages_ready ?? 0,
    messages_unacknowledged: q.messages_unacknowledged ?? 0,
    consumers: q.consumers ?? 0,
  }));
}
