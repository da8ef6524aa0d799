import pino, { type Logger, type LoggerOptions } from 'pino';
import { currentContext } from './context.js';

export type { Logger } from 'pino';

/**
 * Paths pino censors wherever they appear in a log object. Key material and credentials never
 * reach a log line: add a path here rather than trusting every call site.
 */
export const redactPaths = [
  'password', '*.password', 'secret', '*.secret', 'secrets', '*.secrets', 'privateKey', '*.privateKey',
  'private_key', '*.private_key', 'key', '*.key', 'token', '*.token', 'authorization', '*.authorization',
  'headers.authorization', 'req.headers.authorization', 'req.headers.cookie', 'req.headers["webhook-signature"]',
  'mnemonic', '*.mnemonic', 'seed', '*.seed', 'apiKey', '*.apiKey',
  'config.AMQP_URL', 'config.DATABASE_URL', 'config.REDIS_URL',
];

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
