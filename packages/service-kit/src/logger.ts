import pino, { type Logger, type LoggerOptions } from 'pino';
import { currentContext } from './context.js';

export type { Logger } from 'pino';

/**
 * Paths pino censors wherever they appear in a log object. Key material and credentials never
 * reach a log line: add a path here rather than trusting every call site.
 */
const redactPaths = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  'privateKey',
  '*.privateKey',
  'private_key',
  '*.private_key',
  'key',
  '*.key',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["webhook-signature"]',
  'mnemonic',
  '*.mnemonic',
  'seed',
  '*.seed',
  'apiKey',
  '*.apiKey',
  'config.AMQP_URL',
  'config.DATABASE_URL',
  'config.REDIS_URL',
  'passphrase',
  '*.passphrase',
  'cookie',
  '*.cookie',
  'req.headers["x-api-key"]',
  'databaseUrl',
  '*.databaseUrl',
  'connectionString',
  '*.connectionString',
];

// `scheme://user:password@host`: the password part, wherever a URL sits inside free text.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]+)@/gi;

/**
 * Free text with the passwords of embedded URLs masked (`amqp://guest:***@host`). Driver errors
 * quote their connection URL, and error text ends up in logs and in /health: paths-based redaction
 * cannot see inside a string, so messages and stacks go through this.
 */
export function scrubCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1$2:***@');
}

// pino's own error serializer, plus credentials masked in message and stack (and in causes, which
// the standard serializer walks into `message`/`stack` as well).
function errSerializer(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  if (out && typeof out === 'object') {
    if (typeof out.message === 'string') out.message = scrubCredentials(out.message);
    if (typeof out.stack === 'string') out.stack = scrubCredentials(out.stack);
  }
  return out;
}

/**
 * A pino JSON logger whose every line carries the service name and the current work context
 * (correlationId, traceparent, messageId) when there is one.
 */
export function createLogger(options: { service: string; level?: string; destination?: pino.DestinationStream }): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: errSerializer, error: errSerializer },
    hooks: {
      // `logger.error(err)` makes err.message the line's `msg`, past the serializer; and a message
      // built with a URL in it is just as leaky. Scrub the message string of every call.
      logMethod(args, method) {
        const a = args as unknown[];
        const first = a[0];
        if (first instanceof Error && typeof a[1] !== 'string') {
          return method.apply(this, [first, scrubCredentials(first.message), ...a.slice(1)] as never);
        }
        const i = typeof first === 'string' ? 0 : typeof a[1] === 'string' ? 1 : -1;
        if (i >= 0) a[i] = scrubCredentials(a[i] as string);
        return method.apply(this, a as never);
      },
    },
    mixin: () => {
      const ctx = currentContext();
      return ctx ? { ...ctx } : {};
    },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** Credentials removed from a URL, for logs and health output (`amqp://guest:***@host`). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

/**
 * Resolves once everything logged so far has reached the destination (at most `timeoutMs`).
 * pino's default stdout stream writes asynchronously, and its `flush(cb)` calls back at once when
 * it buffers nothing, even with a write still in flight; exiting then lets pino's exit-time sync
 * flush overtake that write (lines reordered) or lose it. So wait for the stream's 'drain'
 * (sonic-boom emits it when its last write completed and nothing is buffered). `_writing` is
 * sonic-boom's internal flag: absent on other streams, which are then not waited for.
 */
export function drainLogger(logger: Logger, timeoutMs = 1000): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { _writing?: boolean; once?: (event: string, fn: () => void) => void }
    | undefined;
  if (!stream?._writing || typeof stream.once !== 'function') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    stream.once!('drain', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
