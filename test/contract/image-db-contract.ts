import { afterEach, describe, expect, it } from 'vitest';

import { isKeeperError } from '../../core/errors.js';
import type { NewImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import type { ImageDb } from '../../core/ports/image-db.js';
import type { TargetStore } from '../../core/ports/target-store.js';

export type ContractDb = ImageDb & TargetStore & { close?(): Promise<void> };

export interface ImageDbContractOptions {
  /**
   * Closes `db` and opens the same storage again, as after a restart. Without it the reopen tests are
   * skipped.
   */
  readonly reopen?: (db: ContractDb) => Promise<ContractDb>;
}

/** A row for tests; `n` varies the key (commit) so rows built with different `n` never collide. */
export function sampleRow(n: number, overrides: Partial<NewImageRow> = {}): NewImageRow {
  return {
    name: `registry.local/app/main@sha256:${n.toString(16).padStart(64, '0')}`,
    appId: 1,
    serviceId: 10 + (n % 3),
    serviceName: `main-${n % 3}`,
    imageId: 100 + n,
    releaseId: 1000 + n,
    commit: `commit-${n}`,
    dockerImageId: null,
    ...overrides,
  };
}

export function sampleTargetImage(n: number): TargetImage {
  const { dockerImageId: _unused, ...image } = sampleRow(n);
  return image;
}

export const SAMPLE_TARGET: Target = {
  services: [{ ...sampleTargetImage(1), strategy: 'download-then-kill' }],
  dependent: [sampleTargetImage(2)],
};

/**
 * The behaviour every ImageDb + TargetStore must have (the memory fake and the sql.js adapter run it), so
 * the simulator's fake cannot drift from the real DB.
 */
export function imageDbContract(
  name: string,
  makeDb: () => Promise<ContractDb>,
  options: ImageDbContractOptions = {},
): void {
  describe(`ImageDb + TargetStore contract: ${name}`, () => {
    const open: ContractDb[] = [];
    const fresh = async (): Promise<ContractDb> => {
      const db = await makeDb();
      open.push(db);
      return db;
    };
    const reopen = async (db: ContractDb): Promise<ContractDb> => {
      if (options.reopen === undefined) throw new Error('unreachable: reopen tests are skipped');
      const again = await options.reopen(db);
      open.push(again);
      return again;
    };

    afterEach(async () => {
      for (const db of open.splice(0)) await db.close?.().catch(() => undefined);
    });

    it('starts with no rows and no target', async () => {
      const db = await fresh();
      expect(await db.listRows()).toEqual([]);
      expect(await db.readTarget()).toBeNull();
    });

    it('insertRow returns the stored row with its new id, and listRows shows it', async () => {
      const db = await fresh();
      const row = await db.insertRow(sampleRow(1));
      expect(row).toEqual({ ...sampleRow(1), id: row.id });
      expect(Number.isSafeInteger(row.id)).toBe(true);
      expect(await db.listRows()).toEqual([row]);
    });

    it('stores a row with its dockerImageId already set (an image saved by digest)', async () => {
      const db = await fresh();
      const row = await db.insertRow(sampleRow(2, { dockerImageId: 'sha256:abc' }));
      expect(row.dockerImageId).toBe('sha256:abc');
      expect(await db.listRows()).toEqual([row]);
    });

    it('ids increase and are never reused, even after the newest row is deleted', async () => {
      const db = await fresh();
      const a = await db.insertRow(sampleRow(1));
      const b = await db.insertRow(sampleRow(2));
      await db.deleteRow(b.id);
      const c = await db.insertRow(sampleRow(3));
      expect(b.id).toBeGreaterThan(a.id);
      expect(c.id).toBeGreaterThan(b.id);
    });

    it('lists rows in id order', async () => {
      const db = await fresh();
      const rows = [];
      for (const n of [5, 3, 9, 1]) rows.push(await db.insertRow(sampleRow(n)));
      expect(await db.listRows()).toEqual(rows);
    });

    it('rejects a second row with the same (name, appId, serviceId, commit) and changes nothing', async () => {
      const db = await fresh();
      const row = await db.insertRow(sampleRow(1));
      const error = await db
        .insertRow(sampleRow(1, { serviceName: 'other', imageId: 7 }))
        .catch((e: unknown) => e);
      expect(isKeeperError(error, 'DB_ERROR')).toBe(true);
      expect(await db.listRows()).toEqual([row]);
    });

    it('accepts rows that differ in any one key field', async () => {
      const db = await fresh();
      const base = sampleRow(1);
      await db.insertRow(base);
      await db.insertRow({ ...base, name: `${base.name}-x` });
      await db.insertRow({ ...base, appId: base.appId + 1 });
      await db.insertRow({ ...base, serviceId: base.serviceId + 1 });
      await db.insertRow({ ...base, commit: `${base.commit}-x` });
      expect(await db.listRows()).toHaveLength(5);
    });

    it('setDockerImageId changes that row only', async () => {
      const db = await fresh();
      const a = await db.insertRow(sampleRow(1));
      const b = await db.insertRow(sampleRow(2));
      await db.setDockerImageId(a.id, 'sha256:aaa');
      expect(await db.listRows()).toEqual([{ ...a, dockerImageId: 'sha256:aaa' }, b]);
      await db.setDockerImageId(a.id, 'sha256:bbb');
      expect((await db.listRows())[0]?.dockerImageId).toBe('sha256:bbb');
    });

    it('setDockerImageId of a missing row is an error and changes nothing', async () => {
      const db = await fresh();
      const a = await db.insertRow(sampleRow(1));
      const error = await db.setDockerImageId(a.id + 100, 'sha256:aaa').catch((e: unknown) => e);
      expect(isKeeperError(error, 'DB_ERROR')).toBe(true);
      expect(await db.listRows()).toEqual([a]);
    });

    it('deleteRow removes the row; deleting a missing row is fine', async () => {
      const db = await fresh();
      const a = await db.insertRow(sampleRow(1));
      const b = await db.insertRow(sampleRow(2));
      await db.deleteRow(a.id);
      await db.deleteRow(a.id);
      await db.deleteRow(b.id + 100);
      expect(await db.listRows()).toEqual([b]);
    });

    it('a deleted key can be inserted again (with a new id)', async () => {
      const db = await fresh();
      const a = await db.insertRow(sampleRow(1));
      await db.deleteRow(a.id);
      const again = await db.insertRow(sampleRow(1));
      expect(again.id).toBeGreaterThan(a.id);
      expect(await db.listRows()).toEqual([again]);
    });

    it('hands out copies or frozen rows: mutating what it returned or was given changes nothing stored', async () => {
      const db = await fresh();
      const input = { ...sampleRow(1) };
      const row = await db.insertRow(input);
      // A frozen row refuses the write (a TypeError in strict code); a copy takes it. Neither reaches storage.
      const tryWrite = (target: unknown, value: string): void => {
        try {
          (target as { serviceName: string }).serviceName = value;
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
        }
      };
      tryWrite(input, 'mutated input');
      tryWrite(row, 'mutated output');
      const listed = await db.listRows();
      tryWrite(listed[0], 'mutated list');
      listed.pop();
      expect(await db.listRows()).toHaveLength(1);
      expect((await db.listRows())[0]?.serviceName).toBe(sampleRow(1).serviceName);
    });

    it('target round-trips and is replaced by the next write', async () => {
      const db = await fresh();
      await db.writeTarget(SAMPLE_TARGET);
      expect(await db.readTarget()).toEqual(SAMPLE_TARGET);
      const next: Target = {
        services: [{ ...sampleTargetImage(3), strategy: 'delete-then-download' }],
        dependent: [],
      };
      await db.writeTarget(next);
      expect(await db.readTarget()).toEqual(next);
    });

    it('concurrent calls each commit once', async () => {
      const db = await fresh();
      const rows = await Promise.all([1, 2, 3, 4, 5].map((n) => db.insertRow(sampleRow(n))));
      expect(new Set(rows.map((r) => r.id)).size).toBe(5);
      expect(await db.listRows()).toEqual([...rows].sort((a, b) => a.id - b.id));
    });

    describe.skipIf(options.reopen === undefined)('across a reopen', () => {
      it('rows, ids and the target survive', async () => {
        const db = await fresh();
        const a = await db.insertRow(sampleRow(1));
        const b = await db.insertRow(sampleRow(2, { dockerImageId: 'sha256:bbb' }));
        await db.setDockerImageId(a.id, 'sha256:aaa');
        await db.writeTarget(SAMPLE_TARGET);
        await db.deleteRow(b.id);
        const again = await reopen(db);
        expect(await again.listRows()).toEqual([{ ...a, dockerImageId: 'sha256:aaa' }]);
        expect(await again.readTarget()).toEqual(SAMPLE_TARGET);
        // The deleted id b stays retired after a restart too.
        const c = await again.insertRow(sampleRow(3));
        expect(c.id).toBeGreaterThan(b.id);
      });

      it('concurrent commits are all durable', async () => {
        const db = await fresh();
        const rows = await Promise.all([1, 2, 3, 4, 5].map((n) => db.insertRow(sampleRow(n))));
        const again = await reopen(db);
        expect(await again.listRows()).toEqual([...rows].sort((x, y) => x.id - y.id));
      });
    });
  });
}
