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
export const Timestamp = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');
/** An amount in the chain's base units (lamports, wei, octas) as a decimal string. */
export const BaseUnits = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'a non-negative integer in base units, as a decimal string')
  .describe('Amount in base units (lamports, wei, octas) as a decimal string');
export const IdempotencyKey = z.string().min(1).max(200);

/**
 * Text that may be stored in a PostgreSQL text column: any string without NUL characters, which
 * PostgreSQL refuses (one such value would fail a whole batch of inserts).
 */
export const Text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((v) => !v.includes('\u0000'), 'must not contain NUL characters');
