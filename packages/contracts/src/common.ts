import { z } from 'zod';

/** Chains the fleet holds wallets on. */
export const Chain = z.enum(['SOL', 'ETH', 'APTOS']).describe('SOL = Solana, ETH = Ethereum/EVM, APTOS = Aptos');
export type Chain = z.infer<typeof Chain>;
export const allChains: readonly Chain[] = Chain.options;

/** An id of a user in the calling system (opaque to us). */
export const UserId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:@|-]+$/, 'letters, digits and . _ : @ | - only')
  .describe('Opaque id of the user in the calling system');

export const Uuid = z.uuid();
/**
 * RFC 3339 with an offset, whose instant lies in the years 0001-9999 UTC: PostgreSQL has no year 0,
 * and an offset can push 9999-12-31 past what a store can read back.
 */
export const Timestamp = z.iso
  .datetime({ offset: true })
  .refine(
    (v) => {
      const year = new Date(Date.parse(v)).getUTCFullYear();
      return year >= 1 && year <= 9999;
    },
    // Only for a well-formed timestamp: a malformed one is reported once, by the format check.
    { message: 'must lie in the years 0001-9999 (UTC)', when: (p) => p.issues.length === 0 },
  )
  .describe('RFC 3339 timestamp');
/** An amount in the chain's base units (lamports, wei, octas) as a decimal string. */
export const BaseUnits = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'a non-negative integer in base units, as a decimal string')
  .describe('Amount in base units (lamports, wei, octas) as a decimal string');

// A UTF-16 surrogate without its partner: not a character, and PostgreSQL (UTF-8) refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why PostgreSQL would refuse `v` in a text or jsonb value (NUL, a lone surrogate), or undefined. */
function unstorable(v: string): string | undefined {
  if (v.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(v)) return 'must not contain a lone UTF-16 surrogate';
  return undefined;
}

/**
 * Text that may be stored in a PostgreSQL text column: any string without NUL characters or lone
 * UTF-16 surrogates, which PostgreSQL refuses (one such value would fail a whole batch of inserts).
 */
export const Text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .superRefine((v, ctx) => {
      const why = unstorable(v);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    });

/** Nesting that a JSON value may have at most: deeper ones overflow recursive canonicalisation. */
const MAX_JSON_DEPTH = 32;

/**
 * A JSON object that PostgreSQL can keep as jsonb and we can canonicalise: nested at most
 * MAX_JSON_DEPTH deep, no key or string with NUL or a lone surrogate, no number jsonb cannot hold
 * (non-finite). The failing place is named in the issue path (`after.a.0.b`).
 */
export const SafeJsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  // Iterative, so that a hostile value nested thousands deep cannot overflow this check either.
  const stack: Array<{ v: unknown; path: Array<string | number>; depth: number }> = [{ v: value, path: [], depth: 1 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      const why = unstorable(v);
      if (why) return void ctx.addIssue({ code: 'custom', message: why, path });
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return void ctx.addIssue({ code: 'custom', message: 'must be a finite number', path });
    } else if (v !== null && typeof v === 'object') {
      if (depth > MAX_JSON_DEPTH) return void ctx.addIssue({ code: 'custom', message: `must not be nested more than ${MAX_JSON_DEPTH} deep`, path });
      for (const [k, child] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
        if (typeof k === 'string') {
          const why = unstorable(k);
          if (why) return void ctx.addIssue({ code: 'custom', message: `key ${why}`, path: [...path, k] });
        }
        stack.push({ v: child, path: [...path, k], depth: depth + 1 });
      }
    }
  }
});

/** A caller's idempotency key: stored, so held to what PostgreSQL keeps. */
export const IdempotencyKey = Text(1, 200);
