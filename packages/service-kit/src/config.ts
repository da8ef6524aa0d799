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
 * Values that only a development machine may use (the KMS emulator, a chain over plain HTTP, the
 * fleet runner's webhook secret), registered by `envVar.developmentOnly`; `loadConfig` checks them.
 */
const developmentOnlyRules = new WeakMap<z.ZodType, { what: string; is: (value: unknown) => boolean }>();

/** Google Cloud KMS itself (TLS, Application Default Credentials): the one `KMS_ENDPOINT` that is not the emulator. */
export const CLOUD_KMS_ENDPOINT = 'cloudkms.googleapis.com';

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
  /**
   * Where keys are kept: `cloudkms.googleapis.com` (optionally `:443`), Google Cloud KMS with the
   * workload's credentials, yields `CLOUD_KMS_ENDPOINT`; any other `host:port` is the KMS emulator,
   * reached over plaintext gRPC without authentication, so development mode only. No default: an
   * empty value once meant the emulator, and a production manifest that forgot the variable must
   * stop, not sign with keys kept unencrypted on some host.
   */
  kmsEndpoint() {
    const s = z
      .string({ message: `required: ${CLOUD_KMS_ENDPOINT} (Google Cloud KMS) or host:port of the KMS emulator` })
      .transform((v) => v.trim())
      .refine((v) => v === CLOUD_KMS_ENDPOINT || v === `${CLOUD_KMS_ENDPOINT}:443` || /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(v), {
        message: `expected ${CLOUD_KMS_ENDPOINT} (Google Cloud KMS) or host:port of the KMS emulator`,
      })
      .transform((v) => (v === `${CLOUD_KMS_ENDPOINT}:443` ? CLOUD_KMS_ENDPOINT : v));
    return envVar.developmentOnly(wrap(s, undefined) as unknown as z.ZodType<string, unknown>, {
      what: 'the KMS emulator (a KMS_ENDPOINT other than cloudkms.googleapis.com: plaintext, no authentication)',
      is: (v) => v !== CLOUD_KMS_ENDPOINT,
    });
  },
  /**
   * A chain's JSON-RPC URL, `http://` or `https://`. Plain HTTP is what the local development
   * runtimes speak, and an answer on it can be forged by anyone on the path (deposits are credited
   * on such answers): development mode only.
   */
  chainUrl(defaultValue?: string) {
    return envVar.developmentOnly(envVar.url(['http', 'https'], defaultValue), {
      what: 'a chain RPC over plain http:// (the local development chains; production uses https://)',
      is: (v) => v.startsWith('http:'),
    });
  },
  /**
   * Marks `schema` as development-only when `rule.is(value)`: `loadConfig` then refuses the value
   * unless `FLEET_DEV_MODE=true`, and always with `NODE_ENV=production`, naming `rule.what`.
   * Returns `schema` itself (mark the schema that goes into the shape, after any `.optional()`).
   */
  developmentOnly<T>(schema: z.ZodType<T, unknown>, rule: { what: string; is: (value: T) => boolean }): z.ZodType<T, unknown> {
    developmentOnlyRules.set(schema, rule as { what: string; is: (value: unknown) => boolean });
    return schema;
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
  /** The service's runtime role: only the privileges its migrations grant it. */
  DATABASE_URL: envVar.url(['postgres', 'postgresql'], 'postgres://postgres@127.0.0.1:5432/postgres'),
  /**
   * The role that owns the service's schema and runs its migrations; they grant the runtime role
   * (the user of `DATABASE_URL`) what it needs. Unset: `DATABASE_URL`, one role for both (no
   * separation; development only).
   */
  DATABASE_MIGRATION_URL: envVar.url(['postgres', 'postgresql']).optional() as z.ZodType<string | undefined, unknown>,
  DATABASE_SCHEMA: envVar.identifier().optional() as z.ZodType<string | undefined, unknown>,
  REDIS_URL: envVar.url(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  HTTP_PORT: envVar.port(8080),
  LOG_LEVEL: envVar.oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  MIGRATE: envVar.bool(true),
  SHUTDOWN_TIMEOUT_MS: envVar.int({ min: 1, max: 600_000, default: 10_000 }),
  /**
   * Development mode: allows the development runtimes (values marked `envVar.developmentOnly`).
   * Off unless set; refused with `NODE_ENV=production` (see `loadConfig`).
   */
  FLEET_DEV_MODE: envVar.bool(false),
  /** `production` (the container image's) refuses development mode and development-only values. */
  NODE_ENV: envVar.string().optional() as z.ZodType<string | undefined, unknown>,
};

/**
 * The admin listener of a service with state-changing endpoints (`assemble({ adminRoutes })`): apart
 * from `HTTP_PORT`, which serves probes, metrics and webhooks to whoever reaches it. Bound to
 * loopback by default (an operator on the pod or machine); bound elsewhere it needs `ADMIN_TOKEN`
 * (at least 32 characters), sent as `Authorization: Bearer <token>`.
 */
export function adminConfigShape(defaults: { port: number }) {
  return {
    ADMIN_HTTP_PORT: envVar.port(defaults.port),
    ADMIN_HTTP_HOST: envVar.string('127.0.0.1'),
    ADMIN_TOKEN: wrap(z.string().min(32, { message: 'at least 32 characters' }), undefined).optional() as z.ZodType<string | undefined, unknown>,
  };
}

/** Whether `host` (a listen address or name) is this machine only. */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

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
 * Then the development rules: a value marked `envVar.developmentOnly` needs `FLEET_DEV_MODE=true`,
 * and with `NODE_ENV=production` neither it nor development mode is accepted; a shape with
 * `adminConfigShape` needs `ADMIN_TOKEN` when `ADMIN_HTTP_HOST` is not loopback.
 *
 * @throws ConfigError listing every bad variable by name (values are never quoted).
 */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(root)'),
      // A builder may say what a missing value should have been ("required: …").
      message:
        issue.code === 'invalid_type' && issue.input === undefined ? (issue.message.startsWith('required:') ? issue.message : 'required') : issue.message,
    }));
    throw new ConfigError(problems);
  }
  const problems = developmentProblems(shape, result.data as Record<string, unknown>, env);
  if (problems.length > 0) throw new ConfigError(problems);
  if ('ADMIN_HTTP_HOST' in shape) {
    const c = result.data as { ADMIN_HTTP_HOST: string; ADMIN_TOKEN?: string };
    if (!isLoopbackHost(c.ADMIN_HTTP_HOST) && c.ADMIN_TOKEN === undefined) {
      throw new ConfigError([{ variable: 'ADMIN_TOKEN', message: 'required when ADMIN_HTTP_HOST is not loopback (the admin endpoints change state)' }]);
    }
  }
  return result.data;
}

// Development mode is one switch, FLEET_DEV_MODE, rather than NODE_ENV=development: libraries read
// NODE_ENV for their own ends (express shows stack traces outside production), and a development
// runtime must be asked for by name, never reached by leaving a variable out. NODE_ENV=production
// wins over it: such a process refuses development mode and every development-only value.
function developmentProblems(shape: z.ZodRawShape, config: Record<string, unknown>, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const production = env.NODE_ENV === 'production';
  const devMode = config.FLEET_DEV_MODE === true;
  const problems: ConfigProblem[] = [];
  if (production && devMode) problems.push({ variable: 'FLEET_DEV_MODE', message: 'development mode is refused with NODE_ENV=production' });
  for (const [variable, schema] of Object.entries(shape)) {
    const rule = developmentOnlyRules.get(schema as z.ZodType);
    const value = config[variable];
    if (!rule || value === undefined || !rule.is(value)) continue;
    if (production) problems.push({ variable, message: `${rule.what} is for development only: refused with NODE_ENV=production` });
    else if (!devMode) problems.push({ variable, message: `${rule.what} needs development mode (FLEET_DEV_MODE=true)` });
  }
  return problems;
}
