import { z } from 'zod';

/** One rejected variable. `message` never quotes the value: it may be a credential. */
export interface ConfigProblem {
  variable: string;
  message: string;
}

/** The environment did not pass the schema. `problems` lists every bad variable, not just the first. */
export class ConfigError extends Error {
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.variable}: ${p.message}`).join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// An empty variable (`FOO=` in a compose file, `value: ""` in a manifest) means "not set", so the
// default applies instead of failing on a value nobody meant to give.
const unsetIfEmpty = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

// `.default()` in zod 4 short-circuits with an output value, so defaults are typed values, not strings.
function wrap<T extends z.ZodType>(s: T, defaultValue: z.output<T> | undefined): z.ZodType {
  return z.preprocess(unsetIfEmpty, defaultValue === undefined ? s : (s as z.ZodType).default(defaultValue as never));
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Whether `s` is a lower-case SQL identifier (schema or table name): `[a-z_][a-z0-9_]*`, at most 63 characters. */
export const isIdentifier = (s: string): boolean => IDENTIFIER.test(s);

/**
 * Builders of strict environment variables, for a service's own config shape. Each one reads a
 * string (or nothing) and either yields the typed value or a problem that names what was expected.
 */
export const envVar = {
  /** `true`/`false`/`1`/`0` only: `yes` or `TRUE ` is a typo, not an intent. */
  bool(defaultValue?: boolean) {
    const s = z
      .string()
      .refine((v) => ['true', 'false', '1', '0'].includes(v), { message: "expected 'true', 'false', '1' or '0'" })
      .transform((v) => v === 'true' || v === '1');
    return wrap(s, defaultValue) as unknown as z.ZodType<boolean, unknown>;
  },
  /** An integer in `[min, max]`. */
  int(opts: { min?: number; max?: number; default?: number } = {}) {
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = opts;
    const s = z
      .string()
      .refine((v) => /^-?\d+$/.test(v.trim()), { message: 'expected an integer' })
      .transform((v) => Number(v.trim()))
      .refine((n) => n >= min && n <= max, { message: `expected an integer from ${min} to ${max}` });
    return wrap(s, opts.default) as unknown as z.ZodType<number, unknown>;
  },
  /** A TCP port, 0–65535 (0 = any free port). */
  port(defaultValue?: number) {
    return envVar.int({ min: 0, max: 65535, ...(defaultValue === undefined ? {} : { default: defaultValue }) });
  },
  /** A URL whose scheme is one of `schemes` (without `:`), e.g. `['amqp', 'amqps']`. */
  url(schemes: readonly string[], defaultValue?: string) {
    const s = z.string().refine(
      (v) => {
        try {
          const u = new URL(v);
          return schemes.includes(u.protocol.replace(/:$/, '')) && u.hostname !== '';
        } catch {
          return false;
        }
      },
      { message: `expected a URL with scheme ${schemes.map((x) => `${x}://`).join(' or ')}` },
    );
    return wrap(s, defaultValue) as unknown as z.ZodType<string, unknown>;
  },
  /** Like `url`, or several such URLs separated by commas (the nodes of a RabbitMQ cluster). */
  urls(schemes: readonly string[], defaultValue?: string) {
    const one = (v: string) => {
      try {
        const u = new URL(v);
        return schemes.includes(u.protocol.replace(/:$/, '')) && u.hostname !== '';
      } catch {
        return false;
      }
    };
    const s = z.string().refine(
      (v) => {
        const list = v
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x.length > 0);
        return list.length > 0 && list.every(one);
      },
      { message: `expected a URL with scheme ${schemes.map((x) => `${x}://`).join(' or ')}, or several separated by commas` },
    );
    return wrap(s, defaultValue) as unknown as z.ZodType<string, unknown>;
  },
  /** A lower-case SQL identifier (schema or table name): `[a-z_][a-z0-9_]*`, at most 63 characters. */
  identifier(defaultValue?: string) {
    const s = z.string().regex(IDENTIFIER, { message: 'expected a lower-case identifier: a-z, 0-9, _ (at most 63, not starting with a digit)' });
    return wrap(s, defaultValue) as unknown as z.ZodType<string, unknown>;
  },
  /** One of `values`. */
  oneOf<const T extends readonly [string, ...string[]]>(values: T, defaultValue?: T[number]) {
    const s = z.enum(values as unknown as [string, ...string[]], { message: `expected one of ${values.join(', ')}` });
    return wrap(s, defaultValue) as unknown as z.ZodType<T[number], unknown>;
  },
  /**
   * A comma-separated list: items trimmed, empty items dropped, each one passing `each` (else
   * `message`). Unlike the other builders an empty value is an empty list, not "unset"
   * (`OUTBOX_SCHEMAS=` turns a sweep off); `nonEmpty` is the message that refuses an empty list.
   */
  list(opts: { default?: string; each?: (item: string) => boolean; message: string; nonEmpty?: string }) {
    const { each, nonEmpty } = opts;
    let s: z.ZodType<string[], unknown> = (opts.default === undefined ? z.string() : z.string().default(opts.default)).transform((v) =>
      v
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    );
    if (nonEmpty !== undefined) s = s.refine((list) => list.length > 0, nonEmpty);
    if (each) s = s.refine((list) => list.every(each), opts.message);
    return s;
  },
  /** Any non-empty string (secrets included: a problem never quotes the value). */
  string(defaultValue?: string) {
    const s = z.string({ message: 'required' });
    return wrap(s, defaultValue) as unknown as z.ZodType<string, unknown>;
  },
};

/**
 * The variables every service reads, with defaults that point at this machine's services.
 * `DATABASE_SCHEMA` stays undefined here: its default is the service name, which a service sets by
 * overriding it: `{ ...baseConfigShape, DATABASE_SCHEMA: envVar.identifier('wallet'), HTTP_PORT: envVar.port(8081) }`.
 */
export const baseConfigShape = {
  AMQP_URL: envVar.urls(['amqp', 'amqps'], 'amqp://guest:guest@127.0.0.1:5672'),
  DATABASE_URL: envVar.url(['postgres', 'postgresql'], 'postgres://postgres@127.0.0.1:5432/postgres'),
  DATABASE_SCHEMA: envVar.identifier().optional() as z.ZodType<string | undefined, unknown>,
  REDIS_URL: envVar.url(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  HTTP_PORT: envVar.port(8080),
  LOG_LEVEL: envVar.oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  MIGRATE: envVar.bool(true),
  SHUTDOWN_TIMEOUT_MS: envVar.int({ min: 1, max: 600_000, default: 10_000 }),
};

/**
 * The common variables with one service's defaults: its HTTP port, its schema (by convention the
 * service's name) and the size of its PostgreSQL pool (`DATABASE_POOL_MAX`, 1–200). A service
 * spreads it into its own shape and adds (or overrides) its variables.
 */
export function serviceConfigShape(defaults: { httpPort: number; schema: string; poolMax: number }) {
  return {
    ...baseConfigShape,
    HTTP_PORT: envVar.port(defaults.httpPort),
    DATABASE_SCHEMA: envVar.identifier(defaults.schema),
    DATABASE_POOL_MAX: envVar.int({ min: 1, max: 200, default: defaults.poolMax }),
  };
}

/** A service's common variables, loaded (see `serviceConfigShape`). */
export type ServiceConfig = z.infer<z.ZodObject<ReturnType<typeof serviceConfigShape>>>;

type RetryVariable<P extends string> = `${P}_RETRY_MAX_ATTEMPTS` | `${P}_RETRY_INITIAL_DELAY_MS` | `${P}_RETRY_MAX_DELAY_MS`;

/**
 * A broker-side retry policy from the environment: `<P>_RETRY_MAX_ATTEMPTS` (attempts in all, the
 * first one included: 1 to `maxAttemptsLimit`), `<P>_RETRY_INITIAL_DELAY_MS` (the first delay,
 * 1 ms to 1 h) and `<P>_RETRY_MAX_DELAY_MS` (the cap of one delay, 1 ms to a day), with the given
 * defaults. `retryPolicyOf` reads them back as the policy a queue of the topology takes.
 */
export function retryConfigShape<P extends string>(
  prefix: P,
  defaults: { maxAttempts: number; maxAttemptsLimit: number; initialDelayMs: number; maxDelayMs: number },
): Record<RetryVariable<P>, z.ZodType<number, unknown>> {
  const shape: Record<string, z.ZodType<number, unknown>> = {
    [`${prefix}_RETRY_MAX_ATTEMPTS`]: envVar.int({ min: 1, max: defaults.maxAttemptsLimit, default: defaults.maxAttempts }),
    [`${prefix}_RETRY_INITIAL_DELAY_MS`]: envVar.int({ min: 1, max: 3_600_000, default: defaults.initialDelayMs }),
    [`${prefix}_RETRY_MAX_DELAY_MS`]: envVar.int({ min: 1, max: 86_400_000, default: defaults.maxDelayMs }),
  };
  return shape as Record<RetryVariable<P>, z.ZodType<number, unknown>>;
}

/** The policy loaded from `retryConfigShape(prefix, …)`'s variables. */
export function retryPolicyOf<P extends string>(
  config: Record<RetryVariable<P>, number>,
  prefix: P,
): { maxAttempts: number; initialDelayMs: number; maxDelayMs: number } {
  return {
    maxAttempts: config[`${prefix}_RETRY_MAX_ATTEMPTS`],
    initialDelayMs: config[`${prefix}_RETRY_INITIAL_DELAY_MS`],
    maxDelayMs: config[`${prefix}_RETRY_MAX_DELAY_MS`],
  };
}

/**
 * Parses `env` (default `process.env`) through `shape`. Variables the shape does not name are
 * ignored (the environment holds many); every malformed or missing named variable is reported at
 * once. Call it before opening any connection, so that a bad value stops the process at start.
 *
 * @throws ConfigError listing every bad variable by name (values are never quoted).
 */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => ({
    variable: String(issue.path[0] ?? '(root)'),
    message: issue.code === 'invalid_type' && issue.input === undefined ? 'required' : issue.message,
  }));
  throw new ConfigError(problems);
}
