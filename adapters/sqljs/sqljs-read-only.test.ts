import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { SAMPLE_TARGET, sampleRow } from '../../test/contract/image-db-contract.js';
import type { FileSystem } from '../../core/ports/file-system.js';
import { NodeFileSystem } from '../node-fs/node-file-system.js';
import type * as Migrations from './migrations.js';
import { dirSnapshot, writeVersion1Db } from './old-schema-db.test-support.js';
import { SqlJsStateDb } from './sqljs-image-db.js';
import { loadSqlJs } from './sqljs-loader.js';

/**
 * This file plays a later release whose schema is version 2 (one migration more than the shipped
 * MIGRATIONS), so a file written with the shipped migrations is an older schema that open would migrate
 * and persist.
 */
vi.mock('./migrations.js', async (importOriginal) => {
  const real = await importOriginal<typeof Migrations>();
  const migrations: readonly Migrations.Migration[] = [
    ...real.MIGRATIONS,
    { version: 2, description: 'test-only: a later release', sql: 'CREATE TABLE later (id INTEGER) STRICT;' },
  ];
  return {
    ...real,
    MIGRATIONS: migrations,
    SCHEMA_VERSION: migrations.length,
    migrate: (db: Parameters<typeof real.migrate>[0], file: string) => real.migrate(db, file, migrations),
  };
});

const tempDirs: string[] = [];
afterAll(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'image-keeper-sqljs-ro-'));
  tempDirs.push(dir);
  return dir;
}

/** A FileSystem that records every call by name before passing it on. */
function recording(fs: FileSystem): { fs: FileSystem; calls: string[] } {
  const calls: string[] = [];
  const wrapped: FileSystem = {
    readFile: (path) => (calls.push(`readFile ${path}`), fs.readFile(path)),
    writeFile: (path, data, options) => (calls.push(`writeFile ${path}`), fs.writeFile(path, data, options)),
    fsync: (path) => (calls.push(`fsync ${path}`), fs.fsync(path)),
    rename: (from, to) => (calls.push(`rename ${from} ${to}`), fs.rename(from, to)),
    fsyncDir: (dir) => (calls.push(`fsyncDir ${dir}`), fs.fsyncDir(dir)),
    unlink: (path) => (calls.push(`unlink ${path}`), fs.unlink(path)),
    list: (dir) => (calls.push(`list ${dir}`), fs.list(dir)),
    mkdirp: (dir) => (calls.push(`mkdirp ${dir}`), fs.mkdirp(dir)),
  };
  return { fs: wrapped, calls };
}

describe('SqlJsStateDb.openReadOnly', () => {
  it('reads a current DB and leaves the directory as it was: a stale temp file stays', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    const db = await SqlJsStateDb.open(new NodeFileSystem(), path);
    await db.insertRow(sampleRow(1));
    await db.writeTarget(SAMPLE_TARGET);
    await db.close();
    await writeFile(`${path}.tmp-3`, 'half a commit');
    const before = await dirSnapshot(dir);

    const { fs, calls } = recording(new NodeFileSystem());
    const ro = await SqlJsStateDb.openReadOnly(fs, path);
    expect(ro.readOnly).toBe(true);
    expect((await ro.listRows()).map((r) => r.commit)).toEqual(['commit-1']);
    expect(await ro.readTarget()).toEqual(SAMPLE_TARGET);
    await ro.close();

    expect(calls).toEqual([`readFile ${path}`]);
    expect(await dirSnapshot(dir)).toEqual(before);
  });

  it('reads an older schema, migrating it in memory only: the file keeps its bytes and mtime', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    await writeVersion1Db(path, 'sha256:aa');
    await writeFile(`${path}.tmp-0`, 'half a commit');
    const before = await dirSnapshot(dir);

    const { fs, calls } = recording(new NodeFileSystem());
    const ro = await SqlJsStateDb.openReadOnly(fs, path);
    expect((await ro.listRows()).map((r) => [r.commit, r.dockerImageId])).toEqual([
      ['commit-1', 'sha256:aa'],
    ]);
    expect(await ro.readTarget()).toEqual(SAMPLE_TARGET);
    await ro.close();
    expect(calls).toEqual([`readFile ${path}`]);
    expect(await dirSnapshot(dir)).toEqual(before);

    // The fixture really is an older schema: open (read-write) migrates it, persists it and drops the temp.
    const rw = await SqlJsStateDb.open(new NodeFileSystem(), path);
    await rw.close();
    expect(await readdir(dir)).toEqual(['state.db']);
    expect((await readFile(path)).toString('base64')).not.toBe(before['state.db']?.bytes);
  });

  it('fails on a truncated file with DB_CORRUPT naming it, and leaves the file and a temp file alone', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    await writeVersion1Db(path, 'sha256:aa');
    const whole = await readFile(path);
    await writeFile(path, whole.subarray(0, Math.floor(whole.byteLength / 2)));
    await writeFile(`${path}.tmp-1`, 'half a commit');
    const before = await dirSnapshot(dir);

    const { fs, calls } = recording(new NodeFileSystem());
    const error = await SqlJsStateDb.openReadOnly(fs, path).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'DB_CORRUPT', details: { path } });
    expect(String(error)).toContain(`state DB ${path} is corrupt`);
    expect(calls).toEqual([`readFile ${path}`]);
    expect(await dirSnapshot(dir)).toEqual(before);
  });

  it('refuses every write with DB_ERROR "read-only", before memory or disk change', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    await writeVersion1Db(path, 'sha256:aa');
    const before = await dirSnapshot(dir);
    const { fs, calls } = recording(new NodeFileSystem());
    const ro = await SqlJsStateDb.openReadOnly(fs, path);
    const rows = await ro.listRows();
    const rowId = rows[0]?.id ?? -1;
    const writes: [string, () => Promise<unknown>][] = [
      ['insertRow', () => ro.insertRow(sampleRow(2))],
      ['setDockerImageId', () => ro.setDockerImageId(rowId, 'sha256:bb')],
      ['deleteRow', () => ro.deleteRow(rowId)],
      ['deleteRow', () => ro.deleteRow(4242)],
      ['writeTarget', () => ro.writeTarget({ services: [], dependent: [] })],
    ];
    for (const [method, write] of writes) {
      const error = await write().catch((e: unknown) => e);
      expect(error, method).toMatchObject({ code: 'DB_ERROR' });
      expect(String(error), method).toContain(`${method}: state DB ${path} is open read-only`);
    }
    expect(await ro.listRows()).toEqual(rows);
    expect(await ro.readTarget()).toEqual(SAMPLE_TARGET);
    await ro.close();
    expect(calls).toEqual([`readFile ${path}`]);
    expect(await dirSnapshot(dir)).toEqual(before);
  });

  it('reads a missing DB as empty and creates nothing, not even its directory', async () => {
    const dir = await tempDir();
    const path = join(dir, 'absent', 'state.db');
    const { fs, calls } = recording(new NodeFileSystem());
    const ro = await SqlJsStateDb.openReadOnly(fs, path);
    expect(await ro.listRows()).toEqual([]);
    expect(await ro.readTarget()).toBeNull();
    await expect(ro.insertRow(sampleRow(1))).rejects.toMatchObject({ code: 'DB_ERROR' });
    await ro.close();
    expect(calls).toEqual([`readFile ${path}`]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a newer schema with DB_ERROR, as open does, and leaves the file alone', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.db');
    const SQL = await loadSqlJs();
    const raw = new SQL.Database();
    const real = await vi.importActual<typeof Migrations>('./migrations.js');
    real.migrate(raw, path, real.MIGRATIONS);
    raw.run('PRAGMA user_version = 99');
    await writeFile(path, raw.export());
    raw.close();
    const before = await dirSnapshot(dir);
    const error = await SqlJsStateDb.openReadOnly(new NodeFileSystem(), path).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'DB_ERROR' });
    expect(String(error)).toContain('schema version 99');
    expect(await dirSnapshot(dir)).toEqual(before);
  });
});
