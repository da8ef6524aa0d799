import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { createBroker, type Broker } from '@wallet-fleet/messaging';
import { createLogger, safeUrl } from '@wallet-fleet/service-kit';
import amqp, { type ChannelModel } from 'amqplib';
import type { Config } from './config.js';

/** Races `p` against a deadline; on timeout runs `onTimeout` and throws UNAVAILABLE with `what`. */
async function within<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new FleetError(ErrorCode.UNAVAILABLE, what));
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The connections one command needs, opened on first use and all closed by close(): a broker of
 * `packages/messaging` (requests, and confirmed mandatory publishes for replay) and a plain AMQP
 * connection (basic.get on dead-letter queues, which the broker does not offer).
 */
export class Session {
  private brokerP: Promise<Broker> | undefined;
  private connP: Promise<ChannelModel> | undefined;

  constructor(readonly config: Config) {}

  /** @throws FleetError UNAVAILABLE (RabbitMQ unreachable within the timeout, or refusing us) */
  broker(): Promise<Broker> {
    this.brokerP ??= (async () => {
      const b = createBroker({
        url: this.config.amqpUrl,
        service: 'fleetctl',
        // No queues of its own: the broker only publishes and calls. Declaring the two fleet
        // exchanges (what it does on start) is idempotent and what every service does too.
        topology: { queues: [] },
        // Logs of the library go to stderr, off unless asked for: stdout is the command's output.
        logger: createLogger({ service: 'fleetctl', level: process.env.LOG_LEVEL ?? 'silent', destination: process.stderr }),
      });
      // The broker retries a refused connection forever (right for a service, not for a command).
      await within(
        b.start(),
        this.config.timeoutMs,
        `cannot reach RabbitMQ at ${safeUrl(this.config.amqpUrl)} within ${this.config.timeoutMs} ms`,
        () => void b.stop({ timeoutMs: 1000 }),
      ).catch((e: unknown) => {
        if (e instanceof FleetError) throw e;
        throw new FleetError(ErrorCode.UNAVAILABLE, `RabbitMQ at ${safeUrl(this.config.amqpUrl)} refused us: ${(e as Error).message}`);
      });
      return b;
    })();
    return this.brokerP;
  }

  /** @throws FleetError UNAVAILABLE (RabbitMQ unreachable within the timeout, or refusing us) */
  amqp(): Promise<ChannelModel> {
    this.connP ??= (async () => {
      const connecting = amqp.connect(this.config.amqpUrl, { noDelay: true, clientProperties: { connection_name: `fleetctl (pid ${process.pid})` } });
      try {
        const conn = await within(
          connecting,
          this.config.timeoutMs,
          `cannot reach RabbitMQ at ${safeUrl(this.config.amqpUrl)} within ${this.config.timeoutMs} ms`,
          () => void connecting.then((c) => c.close()).catch(() => undefined),
        );
        conn.on('error', () => undefined);
        return conn;
      } catch (e) {
        if (e instanceof FleetError) throw e;
        throw new FleetError(ErrorCode.UNAVAILABLE, `RabbitMQ at ${safeUrl(this.config.amqpUrl)} refused us: ${(e as Error).message}`);
      }
    })();
    return this.connP;
  }

  async close(): Promise<void> {
    const [b, c] = await Promise.allSettled([this.brokerP, this.connP]);
    await Promise.allSettled([
      b.status === 'fulfilled' && b.value ? b.value.stop({ timeoutMs: 2000 }) : undefined,
      c.status === 'fulfilled' && c.value ? c.value.close() : undefined,
    ]);
  }
}
