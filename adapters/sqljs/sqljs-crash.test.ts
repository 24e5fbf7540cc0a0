import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { KeeperError, isKeeperError, isPowerCut } from '../../core/errors.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target } from '../../core/model/target.js';
import { SAMPLE_TARGET, sampleRow, sampleTargetImage } from '../../test/contract/image-db-contract.js';
import { FakeFileSystem, type FakeFsSnapshot } from '../fake-fs/fake-file-system.js';
import { MemoryImageDb } from '../memory/memory-image-db.js';
import { SqlJsStateDb } from './sqljs-image-db.js';

const DIR = '/var/lib/image-keeper';
const DB = `${DIR}/state.db`;

interface DbState {
  readonly rows: ImageRow[];
  readonly target: Target | null;
}

type DbLike = MemoryImageDb | SqlJsStateDb;

/** One commit of a workload; `rows` are the rows the workload inserted so far, in order. */
type Op = { readonly label: string; run(db: DbLike, rows: ImageRow[]): Promise<void> };

const insert = (n: number, dockerImageId: string | null = null): Op => ({
  label: `insert ${n}`,
  run: async (db, rows) => {
    rows.push(await db.insertRow(sampleRow(n, { dockerImageId })));
  },
});
const setId = (index: number): Op => ({
  label: `setDockerImageId #${index}`,
  run: async (db, rows) => {
    const row = rows[index % Math.max(1, rows.length)];
    await db.setDockerImageId(row?.id ?? 999, `sha256:${index}`);
  },
});
const remove = (index: number): Op => ({
  label: `deleteRow #${index}`,
  run: async (db, rows) => {
    await db.deleteRow(rows[index % Math.max(1, rows.length)]?.id ?? 999);
  },
});
const target = (n: number): Op => ({
  label: `writeTarget ${n}`,
  run: async (db) => {
    await db.writeTarget(
      n === 0 ? SAMPLE_TARGET : { services: [], dependent: [sampleTargetImage(n), sampleTargetImage(n + 1)] },
    );
  },
});

/** A workload touching every kind of commit, including a no-op delete (which writes nothing). */
const WORKLOAD: readonly Op[] = [
  insert(1),
  insert(2),
  setId(0),
  target(0),
  remove(1),
  remove(1),
  insert(3, 'sha256:saved-by-digest'),
  target(5),
];

async function readState(db: DbLike): Promise<DbState> {
  return { rows: await db.listRows(), target: await db.readTarget() };
}

/** The state after each prefix of the workload, computed on the memory fake (the contract's reference). */
async function expectedStates(ops: readonly Op[]): Promise<DbState[]> {
  const db = new MemoryImageDb();
  const rows: ImageRow[] = [];
  const states = [await readState(db)];
  for (const op of ops) {
    await op.run(db, rows).catch((error: unknown) => {
      if (!isKeeperError(error, 'DB_ERROR')) throw error;
    });
    states.push(await readState(db));
  }
  return states;
}

interface CutRun {
  readonly fs: FakeFileSystem;
  /** Index of the op the cut interrupted; -1 while opening, ops.length when no cut happened. */
  readonly interrupted: number;
  readonly totalCalls: number;
}

/** Opens a fresh DB and runs `ops`, cutting power just before FS call number `cutAt` (never if undefined). */
async function runWithCut(ops: readonly Op[], cutAt: number | undefined): Promise<CutRun> {
  const fs = new FakeFileSystem({
    stepHook: (call) => {
      if (call.index === cutAt)
        throw new KeeperError('POWER_CUT', `power cut before ${call.op} ${call.path}`);
    },
  });
  let interrupted = -1;
  try {
    const db = await SqlJsStateDb.open(fs, DB);
    const rows: ImageRow[] = [];
    for (interrupted = 0; interrupted < ops.length; interrupted++) {
      await ops[interrupted]?.run(db, rows).catch((error: unknown) => {
        if (!isKeeperError(error, 'DB_ERROR')) throw error;
      });
    }
    await db.close();
  } catch (error) {
    if (!isPowerCut(error)) throw error;
    return { fs, interrupted, totalCalls: fs.calls };
  }
  return { fs, interrupted: ops.length, totalCalls: fs.calls };
}

/** Reopens a crash state and checks it holds `allowed[0]` or `allowed[1]` and no temp file survives. */
async function checkReopen(
  snapshot: FakeFsSnapshot,
  allowed: readonly DbState[],
  where: string,
): Promise<DbState> {
  const fs = FakeFileSystem.fromSnapshot(snapshot);
  let db: SqlJsStateDb;
  try {
    db = await SqlJsStateDb.open(fs, DB);
  } catch (error) {
    throw new Error(`${where}: reopen failed: ${String(error)}`, { cause: error });
  }
  const state = await readState(db);
  await db.close();
  expect(allowed, where).toContainEqual(state);
  expect(await fs.list(DIR), where).toEqual(['state.db']);
  // The cleanup itself must be durable: a second crash right after open finds no temp file either.
  expect(
    fs.crashStates().every((s) => s.files.every((f) => !f.path.includes('.tmp-'))),
    `${where}: stale temp cleanup is durable`,
  ).toBe(true);
  return state;
}

function allowedAt(expected: readonly DbState[], interrupted: number): DbState[] {
  const before = expected[Math.max(0, interrupted)];
  const after = expected[Math.min(expected.length - 1, interrupted + 1)];
  if (before === undefined || after === undefined) throw new Error('expected states cover the workload');
  return interrupted < 0 ? [before] : [before, after];
}

describe('SqlJsStateDb persistence under power cuts', () => {
  it('reopens every crash state at every FS call of a commit sequence to the state before or after the interrupted commit', async () => {
    const expected = await expectedStates(WORKLOAD);
    const { totalCalls } = await runWithCut(WORKLOAD, undefined);
    let explored = 0;
    const tempStates: { snapshot: FakeFsSnapshot; allowed: DbState[]; where: string }[] = [];
    for (let cutAt = 0; cutAt <= totalCalls; cutAt++) {
      const { fs, interrupted } = await runWithCut(WORKLOAD, cutAt);
      const allowed = allowedAt(expected, interrupted);
      for (const [i, snapshot] of fs.crashStates().entries()) {
        const during = interrupted < 0 ? 'open' : (WORKLOAD[interrupted]?.label ?? 'no cut');
        const where = `cut before call ${cutAt} (during ${during}), crash state ${i}`;
        const state = await checkReopen(snapshot, allowed, where);
        explored++;
        if (snapshot.files.some((f) => f.path.includes('.tmp-')))
          tempStates.push({ snapshot, allowed: [state], where });
      }
    }
    // 7 persisting commits x 4 FS calls + 8 calls to create the DB: 36 calls, 37 cut points, 93 distinct
    // crash states (5 after an unsynced temp write, 3 before the fsyncDir, 2 before the rename, 1 otherwise).
    expect(totalCalls).toBeGreaterThanOrEqual(7 * 4);
    expect(explored).toBeGreaterThan(totalCalls * 2);

    // A second power cut during the cleanup of the first one's temp files changes nothing.
    let nested = 0;
    for (const { snapshot, allowed, where } of tempStates) {
      for (let cutAt = 0; ; cutAt++) {
        const fs = FakeFileSystem.fromSnapshot(snapshot, {
          stepHook: (call) => {
            if (call.index === cutAt) throw new KeeperError('POWER_CUT', 'second cut');
          },
        });
        const finished = await SqlJsStateDb.open(fs, DB).then(
          async (db) => {
            await db.close();
            return true;
          },
          (error: unknown) => {
            if (!isPowerCut(error)) throw error;
            return false;
          },
        );
        for (const [i, again] of fs.crashStates().entries()) {
          await checkReopen(again, allowed, `${where}, then cut before open call ${cutAt}, state ${i}`);
          nested++;
        }
        if (finished) break;
      }
    }
    expect(nested).toBeGreaterThan(tempStates.length);
  });

  it('the DB file always opens to the state before or after the last commit, at every power cut', async () => {
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc
        .tuple(fc.integer({ min: 0, max: 5 }), fc.boolean())
        .map(([n, saved]) => insert(n, saved ? 'sha256:x' : null)),
      fc.nat(7).map(setId),
      fc.nat(7).map(remove),
      fc.nat(3).map(target),
    );
    const numRuns = Number(process.env['FC_NUM_RUNS'] ?? 25);
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 6 }), fc.nat(), async (ops, seed) => {
        const expected = await expectedStates(ops);
        const { totalCalls } = await runWithCut(ops, undefined);
        for (let cutAt = 0; cutAt <= totalCalls; cutAt++) {
          const { fs, interrupted } = await runWithCut(ops, cutAt);
          const snapshot = fs.crashState({ seed: seed + cutAt });
          const where = `ops [${ops.map((o) => o.label).join(', ')}], cut before call ${cutAt}, seed ${seed + cutAt}`;
          await checkReopen(snapshot, allowedAt(expected, interrupted), where);
        }
      }),
      {
        numRuns,
        ...(process.env['FC_SEED'] === undefined ? {} : { seed: Number(process.env['FC_SEED']) }),
        ...(process.env['FC_PATH'] === undefined ? {} : { path: process.env['FC_PATH'] }),
        plugins: [fc.interruptAfterTimeLimit(20_000, { failOnInterrupt: false })],
      },
    );
  });
});

describe('SqlJsStateDb with a damaged DB file', () => {
  async function validDbBytes(): Promise<Uint8Array> {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    for (let n = 0; n < 60; n++) await db.insertRow(sampleRow(n));
    await db.writeTarget(SAMPLE_TARGET);
    await db.close();
    const bytes = await fs.readFile(DB);
    if (bytes === null) throw new Error('the DB file exists');
    return bytes;
  }

  async function fsWithDb(bytes: Uint8Array): Promise<FakeFileSystem> {
    const fs = new FakeFileSystem();
    await fs.mkdirp(DIR);
    await fs.writeFile(DB, bytes, { mode: 0o600 });
    await fs.fsync(DB);
    await fs.fsyncDir(DIR);
    return fs;
  }

  const damages: readonly [string, (good: Uint8Array) => Uint8Array, RegExp][] = [
    ['zero bytes', () => new Uint8Array(0), /empty \(0 bytes\)/],
    ['shorter than the header', (good) => good.slice(0, 60), /truncated: 60 bytes/],
    [
      'truncated mid-page',
      (good) => good.slice(0, good.length - 1000),
      /not a whole number of 4096-byte pages/,
    ],
    [
      'truncated at a page boundary',
      (good) => good.slice(0, 4096 * 2),
      /header declares \d+ pages, the file holds 2/,
    ],
    ['garbage', (good) => good.map((_, i) => (i * 131 + 7) & 0xff), /bad header magic/],
    [
      'garbage appended',
      (good) => new Uint8Array([...good, ...new Uint8Array(4096).fill(1)]),
      /beyond the \d+/,
    ],
    [
      'a garbled page behind a valid header',
      (good) => good.map((b, i) => (i >= 4096 * 2 && i < 4096 * 3 ? (i * 31) & 0xff : b)),
      /(malformed|integrity_check)/,
    ],
  ];

  for (const [name, damage, what] of damages) {
    it(`a DB file with ${name} fails open with DB_CORRUPT naming the file and the damage`, async () => {
      const bad = damage(await validDbBytes());
      const fs = await fsWithDb(bad);
      const error = await SqlJsStateDb.open(fs, DB).catch((e: unknown) => e);
      expect(isKeeperError(error, 'DB_CORRUPT'), String(error)).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain(DB);
      expect(message).toMatch(what);
      expect(message).not.toContain('\n');
      // open never touches the bad file.
      expect(await fs.readFile(DB)).toEqual(bad);
      expect(await fs.list(DIR)).toEqual(['state.db']);
    });
  }

  it('openOrRecover moves the bad file aside, never overwriting an earlier one, and starts empty', async () => {
    const bad = (await validDbBytes()).slice(0, 5000);
    const fs = await fsWithDb(bad);
    const now = (): number => Date.UTC(2026, 11, 3, 18, 51, 0, 123);
    const first = await SqlJsStateDb.openOrRecover(fs, DB, { now });
    expect(first.recovered).toEqual({
      reason: expect.stringMatching(/^state DB \/var\/lib\/image-keeper\/state\.db is corrupt: truncated/),
      movedTo: `${DB}.corrupt-2026-12-03T18-51-00.123Z`,
    });
    expect(await first.db.listRows()).toEqual([]);
    expect(await first.db.readTarget()).toBeNull();
    await first.db.close();

    // The same damage again in the same millisecond: the first aside file stays as it was.
    await fs.writeFile(DB, new Uint8Array(0));
    const second = await SqlJsStateDb.openOrRecover(fs, DB, { now });
    expect(second.recovered?.movedTo).toBe(`${DB}.corrupt-2026-12-03T18-51-00.123Z-1`);
    await second.db.close();
    expect(await fs.readFile(`${DB}.corrupt-2026-12-03T18-51-00.123Z`)).toEqual(bad);
    expect(await fs.readFile(`${DB}.corrupt-2026-12-03T18-51-00.123Z-1`)).toEqual(new Uint8Array(0));

    // All of it is durable: a power cut now keeps both aside files and the new, empty DB.
    const rebooted = FakeFileSystem.fromSnapshot(fs.crashState('drop'));
    expect((await rebooted.list(DIR)).length).toBe(3);
    const { db, recovered } = await SqlJsStateDb.openOrRecover(rebooted, DB, { now });
    expect(recovered).toBeNull();
    await db.close();
  });

  it('openOrRecover on a healthy file recovers nothing', async () => {
    const fs = await fsWithDb(await validDbBytes());
    const { db, recovered } = await SqlJsStateDb.openOrRecover(fs, DB);
    expect(recovered).toBeNull();
    expect(await db.listRows()).toHaveLength(60);
    await db.close();
  });
});
