import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Algorithm } from './keys.js';

export type ProtectionLevel = 'SOFTWARE' | 'HSM';

export interface KeyRingRecord {
  name: string;
  createTimeMs: number;
}

export interface CryptoKeyRecord {
  name: string;
  purpose: 'ASYMMETRIC_SIGN';
  algorithm: Algorithm;
  protectionLevel: ProtectionLevel;
  labels: Record<string, string>;
  createTimeMs: number;
  /** Id the next version gets (versions are numbered from 1, like the real service). */
  nextVersion: number;
}

export interface VersionRecord {
  name: string;
  algorithm: Algorithm;
  protectionLevel: ProtectionLevel;
  createTimeMs: number;
  /** From this instant on the version is ENABLED; before it, PENDING_GENERATION. */
  generateTimeMs: number;
  /** Hex. NOT FOR PRODUCTION: an emulator keeps key material in plain files. */
  privateKeyHex: string;
  publicKeyHex: string;
}

type Kind = 'keyRings' | 'cryptoKeys' | 'versions';

/**
 * The emulator's resources: maps in memory, mirrored (when a directory is given) to one JSON file
 * per resource, each written to a temporary file and renamed so a crash never leaves half a key.
 */
export class Store {
  readonly keyRings = new Map<string, KeyRingRecord>();
  readonly cryptoKeys = new Map<string, CryptoKeyRecord>();
  readonly versions = new Map<string, VersionRecord>();

  private constructor(private readonly dataDir: string | undefined) {}

  static async open(dataDir: string | undefined): Promise<Store> {
    const store = new Store(dataDir);
    if (dataDir) {
      for (const kind of ['keyRings', 'cryptoKeys', 'versions'] as const) {
        const dir = join(dataDir, kind);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        for (const file of await readdir(dir)) {
          if (!file.endsWith('.json')) continue; // leftovers of an interrupted write (`.tmp`)
          const record = JSON.parse(await readFile(join(dir, file), 'utf8')) as { name: string };
          (store[kind] as Map<string, unknown>).set(record.name, record);
        }
      }
    }
    return store;
  }

  async persist(kind: Kind, record: { name: string }): Promise<void> {
    if (!this.dataDir) return;
    const file = join(this.dataDir, kind, `${encodeURIComponent(record.name)}.json`);
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(record, null, 2), { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}
