import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { migratedWalletSchema } from './support.js';

describe('wallet database roles (PostgreSQL)', () => {
  let db: Awaited<ReturnType<typeof migratedWalletSchema>>;
  let runtime: pg.Pool;

  before(async () => {
    db = await migratedWalletSchema('wallet_roles');
    runtime = db.runtime;
  });
  after(async () => {
    await db?.end();
  });

  it('should let the runtime role activate a wallet but never move it to another user, re-key it or delete it', async () => {
    const walletId = randomUUID();
    await runtime.query(`INSERT INTO wallets (wallet_id, user_id, chain, address, kms_key_version, public_key) VALUES ($1, 'alice', 'SOL', $2, $3, '\\x01')`, [
      walletId,
      `addr-${walletId}`,
      `kv-${walletId}`,
    ]);
    await runtime.query('UPDATE wallets SET is_active = true WHERE wallet_id = $1', [walletId]);
    for (const sql of [
      "UPDATE wallets SET user_id = 'mallory' WHERE wallet_id = $1",
      "UPDATE wallets SET address = 'elsewhere' WHERE wallet_id = $1",
      "UPDATE wallets SET kms_key_version = 'other' WHERE wallet_id = $1",
      'DELETE FROM wallets WHERE wallet_id = $1',
    ]) {
      await assert.rejects(runtime.query(sql, [walletId]), (e: { code?: string }) => e.code === '42501', sql);
    }
    await assert.rejects(runtime.query('TRUNCATE wallets CASCADE'), (e: { code?: string }) => e.code === '42501');
    const { rows } = await runtime.query('SELECT user_id, is_active FROM wallets WHERE wallet_id = $1', [walletId]);
    assert.deepEqual(rows, [{ user_id: 'alice', is_active: true }]);
  });
});
