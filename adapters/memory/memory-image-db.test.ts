import { describe, expect, it } from 'vitest';

import { KeeperError, isPowerCut } from '../../core/errors.js';
import { imageDbContract, sampleRow } from '../../test/contract/image-db-contract.js';
import { MemoryImageDb } from './memory-image-db.js';

imageDbContract('memory', async () => new MemoryImageDb(), {
  reopen: async (db) => {
    const state = (db as MemoryImageDb).durableState();
    await db.close?.();
    return new MemoryImageDb(state);
  },
});

describe('MemoryImageDb', () => {
  it('a power cut before a commit loses it, after a commit keeps it', async () => {
    let cutOn: string | null = null;
    const db = new MemoryImageDb(undefined, {
      commitHook: (op, phase) => {
        if (`${op}:${phase}` === cutOn) throw new KeeperError('POWER_CUT', `cut at ${op}:${phase}`);
      },
    });
    const a = await db.insertRow(sampleRow(1));
    cutOn = 'insertRow:before';
    expect(isPowerCut(await db.insertRow(sampleRow(2)).catch((e: unknown) => e))).toBe(true);
    expect(new MemoryImageDb(db.durableState()).durableState().rows).toEqual([a]);
    cutOn = 'deleteRow:after';
    expect(isPowerCut(await db.deleteRow(a.id).catch((e: unknown) => e))).toBe(true);
    expect(db.durableState().rows).toEqual([]);
  });

  it('durableState is a deep copy', async () => {
    const db = new MemoryImageDb();
    await db.insertRow(sampleRow(1));
    const state = db.durableState();
    (state.rows as unknown[]).length = 0;
    expect(await db.listRows()).toHaveLength(1);
  });

  it('refuses calls after close', async () => {
    const db = new MemoryImageDb();
    await db.close();
    await expect(db.listRows()).rejects.toMatchObject({ code: 'DB_ERROR' });
  });
});
