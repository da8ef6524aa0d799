import { randomUUID } from 'node:crypto';
import { type AuditCheckpoint, auditCheckpointMessage } from '@wallet-fleet/contracts';
import type { KmsCustody } from '@wallet-fleet/kms';
import { verifyEd25519 } from '@wallet-fleet/kms';
import type { Component, Logger } from '@wallet-fleet/service-kit';
import type { AuditMetrics } from './metrics.js';
import type { AuditStore } from './store/audit-store.js';

/** Signs checkpoints with the audit service's own KMS key and checks signatures made by it. */
export interface CheckpointSigner {
  /**
   * The signed checkpoint of `head` at `signedAt`.
   * @throws FleetError `UNAVAILABLE` (KMS unreachable), `SIGNING_FAILED`, `INTERNAL` (key of another algorithm, permission denied).
   */
  sign(head: { sequence: number; hash: string }, signedAt: string): Promise<AuditCheckpoint>;
  /**
   * Whether `c` was signed by this service's key (the key version must be one of that key's).
   * @throws FleetError `UNAVAILABLE`, `NOT_FOUND` (no such key version), `SIGNING_FAILED`.
   */
  verify(c: AuditCheckpoint): Promise<boolean>;
}

/**
 * The signer over KMS key `keyId` (Ed25519) of `custody`'s key ring, created on first use (the key
 * ring too), so the audit service starts and stores events while KMS is unreachable.
 */
export function createCheckpointSigner(custody: KmsCustody, keyId: string): CheckpointSigner {
  let key: Promise<string> | undefined;
  const keyVersion = () => {
    key ??= custody
      .ensureKeyRing()
      .then(() => custody.createKey(keyId, 'ed25519'))
      .then((k) => k.keyVersionName);
    // A failure must not stick: the next call tries again.
    key.catch(() => {
      key = undefined;
    });
    return key;
  };
  return {
    async sign(head, signedAt) {
      const version = await keyVersion();
      const signature = await custody.signEd25519(version, auditCheckpointMessage({ ...head, signedAt }));
      return {
        checkpointId: randomUUID(),
        sequence: head.sequence,
        hash: head.hash,
        signedAt,
        keyVersion: version,
        signature: Buffer.from(signature).toString('hex'),
      };
    },
    async verify(c) {
      const ours = (await keyVersion()).replace(/\/cryptoKeyVersions\/[0-9]+$/, '/cryptoKeyVersions/');
      // Whoever can write the checkpoints table could name a key of their own.
      if (!c.keyVersion.startsWith(ours)) return false;
      const publicKey = await custody.getPublicKey(c.keyVersion, 'ed25519');
      return verifyEd25519(Buffer.from(c.signature, 'hex'), auditCheckpointMessage(c), publicKey);
    },
  };
}

/**
 * Signs the chain head now, keeps the checkpoint, then publishes it (`audit.checkpoint`). A failed
 * publish leaves the checkpoint kept (verify uses it) and is reported to the caller; the next one
 * is published again.
 * @throws what the signer, the store and `publish` throw.
 */
export async function takeCheckpoint(ports: {
  store: AuditStore;
  signer: CheckpointSigner;
  publish: (c: AuditCheckpoint) => Promise<void>;
}): Promise<AuditCheckpoint> {
  const head = await ports.store.head();
  const checkpoint = await ports.signer.sign(head, new Date().toISOString());
  await ports.store.addCheckpoint(checkpoint);
  await ports.publish(checkpoint);
  return checkpoint;
}

/**
 * A component that takes a checkpoint every `intervalMs` when the chain grew since the latest one.
 * A failed attempt is logged and counted (`audit_checkpoints_total{result="failed"}`) and tried
 * again at the next interval. Stop waits for the attempt in flight.
 */
export function checkpointScheduler(opts: {
  intervalMs: number;
  take: () => Promise<AuditCheckpoint>;
  store: AuditStore;
  metrics: AuditMetrics;
  logger: Logger;
}): Component {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = async () => {
    try {
      const [head, latest] = await Promise.all([opts.store.head(), opts.store.latestCheckpoint()]);
      if (latest && latest.sequence >= head.sequence) return;
      const c = await opts.take();
      opts.metrics.checkpoints.inc({ result: 'signed' });
      opts.logger.info({ sequence: c.sequence, checkpointId: c.checkpointId }, 'audit checkpoint signed');
    } catch (err) {
      opts.metrics.checkpoints.inc({ result: 'failed' });
      opts.logger.warn({ err }, 'audit checkpoint failed; trying again at the next interval');
    }
  };
  return {
    name: 'checkpoints',
    async start() {
      timer = setInterval(() => {
        running ??= tick().finally(() => {
          running = undefined;
        });
      }, opts.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
