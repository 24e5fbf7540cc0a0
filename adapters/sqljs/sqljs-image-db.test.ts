import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { imageDbContract, sampleRow } from '../../test/contract/image-db-contract.js';
import { FakeFileSystem } from '../fake-fs/fake-file-system.js';
import { NodeFileSystem } from '../node-fs/node-file-system.js';
import { SqlJsStateDb } from './sqljs-image-db.js';
import { loadSqlJs } from './sqljs-loader.js';

const DB = '/data/state.db';

const fakeFsOf = new WeakMap<object, FakeFileSystem>();

imageDbContract(
  'sql.js over the fake file system',
  async () => {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    fakeFsOf.set(db, fs);
    return db;
  },
  {
    reopen: async (db) => {
      const fs = fakeFsOf.get(db);
      if (fs === undefined) throw new Error('no fake fs for this db');
      await db.close?.();
      // Reopen from what survives a power cut that drops everything unsynced: only durable state.
      const again = await SqlJsStateDb.open(FakeFileSystem.fromSnapshot(fs.crashState('drop')), DB);
      return again;
    },
  },
);

const tempDirs: string[] = [];
afterAll(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'image-keeper-sqljs-'));
  tempDirs.push(dir);
  return dir;
}

imageDbContract(
  'sql.js over the real file system',
  async () => SqlJsStateDb.open(new NodeFileSystem(), join(await tempDir(), 'state', 'state.db')),
  {
    reopen: async (db) => {
      await db.close?.();
      return SqlJsStateDb.open(new NodeFileSystem(), (db as SqlJsStateDb).path);
    },
  },
);

describe('SqlJsStateDb', () => {
  it('creates the DB file with mode 0600 (real file system)', async () => {
    const path = join(await tempDir(), 'state.db');
    const db = await SqlJsStateDb.open(new NodeFileSystem(), path);
    await db.insertRow(sampleRow(1));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(join(path, '..'))).sort()).toEqual(['state.db']);
    await db.close();
  });

  it('creates the DB file with mode 0600 (fake file system)', async () => {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    expect(fs.modeOf(DB)).toBe(0o600);
    await db.close();
  });

  it('removes stale temp files at open, and only those (real file system)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    const db = await SqlJsStateDb.open(new NodeFileSystem(), path);
    await db.insertRow(sampleRow(1));
    await db.close();
    await writeFile(`${path}.tmp-0`, 'half a commit');
    await writeFile(`${path}.tmp-17`, '');
    await writeFile(join(dir, 'other.db.tmp-1'), 'not ours');
    const again = await SqlJsStateDb.open(new NodeFileSystem(), path);
    expect((await readdir(dir)).sort()).toEqual(['other.db.tmp-1', 'state.db']);
    expect(await again.listRows()).toHaveLength(1);
    await again.close();
  });

  it('persists each commit with write, fsync, rename, fsyncDir, in that order', async () => {
    const calls: string[] = [];
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    fs.stepHook = (call) =>
      calls.push(`${call.op} ${call.path}${call.to === undefined ? '' : ` ${call.to}`}`);
    await db.insertRow(sampleRow(1));
    expect(calls).toEqual([
      `writeFile ${DB}.tmp-1`,
      `fsync ${DB}.tmp-1`,
      `rename ${DB}.tmp-1 ${DB}`,
      'fsyncDir /data',
    ]);
    await db.close();
  });

  it('does not rewrite the file when a delete finds nothing to delete', async () => {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    const before = fs.calls;
    await db.deleteRow(42);
    expect(fs.calls).toBe(before);
    await db.close();
  });

  it('keeps its PRAGMAs after every export', async () => {
    const db = await SqlJsStateDb.open(new FakeFileSystem(), DB);
    for (let n = 0; n < 3; n++) {
      await db.insertRow(sampleRow(n));
      expect(db.readPragmas()).toEqual({ foreign_keys: 1, cell_size_check: 1, trusted_schema: 0 });
    }
    await db.close();
  });

  it('writes schema version 1 with the unique key index', async () => {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    await db.close();
    const SQL = await loadSqlJs();
    const raw = new SQL.Database((await fs.readFile(DB)) ?? undefined);
    expect(raw.exec('PRAGMA user_version')[0]?.values).toEqual([[1]]);
    const index = raw.exec("SELECT sql FROM sqlite_master WHERE name = 'image_key'")[0]?.values[0]?.[0];
    expect(index).toMatch(/UNIQUE INDEX image_key ON image \(name, appId, serviceId, "commit"\)/);
    raw.close();
  });

  it('refuses a DB from a newer schema with DB_ERROR, and recovery leaves it alone', async () => {
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB);
    await db.close();
    const SQL = await loadSqlJs();
    const raw = new SQL.Database((await fs.readFile(DB)) ?? undefined);
    raw.run('PRAGMA user_version = 99');
    await fs.writeFile(DB, raw.export());
    raw.close();
    const error = await SqlJsStateDb.openOrRecover(fs, DB).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'DB_ERROR' });
    expect(String(error)).toContain('schema version 99');
    expect(await fs.list('/data')).toEqual(['state.db']);
  });

  it('a commit that hits DISK_FULL changes nothing, in memory or on disk, and leaves no temp file', async () => {
    const fs = new FakeFileSystem({ diskLimit: 64 * 1024 });
    const db = await SqlJsStateDb.open(fs, DB);
    let error: unknown;
    let before = await db.listRows();
    for (let n = 0; n < 1000 && error === undefined; n++) {
      before = await db.listRows();
      await db.insertRow(sampleRow(n, { serviceName: 'x'.repeat(500) })).catch((e: unknown) => {
        error = e;
      });
    }
    expect(error).toMatchObject({ code: 'DISK_FULL' });
    expect(String(error)).toContain(`${DB}.tmp-`);
    expect(await db.listRows()).toEqual(before);
    expect(await fs.list('/data')).toEqual(['state.db']);
    await db.close();
    const again = await SqlJsStateDb.open(FakeFileSystem.fromSnapshot(fs.crashState('drop')), DB);
    expect(await again.listRows()).toEqual(before);
    await again.close();
  });

  it('refuses calls after close', async () => {
    const db = await SqlJsStateDb.open(new FakeFileSystem(), DB);
    await db.close();
    await expect(db.listRows()).rejects.toMatchObject({ code: 'DB_ERROR' });
  });
});
