import type { Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type * as Migrations from '../adapters/sqljs/migrations.js';
import { dirSnapshot, writeVersion1Db } from '../adapters/sqljs/old-schema-db.test-support.js';
import { bufferIo } from './cli-io.js';
import { emptyEngine } from './empty-engine.test-support.js';
import { main } from './main.js';

/**
 * This file plays a later release whose schema is version 2, so a DB file written with the shipped
 * migrations (version 1) is an older schema: opening it read-write migrates and rewrites it.
 */
vi.mock('../adapters/sqljs/migrations.js', async (importOriginal) => {
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

describe('read-only device commands on an existing DB write nothing', () => {
  let dir = '';
  let server: Server;
  let engine = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-keeper-ro-db-'));
    engine = `unix://${join(dir, 'engine.sock')}`;
    server = await emptyEngine(join(dir, 'engine.sock'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function deviceDir(name: string): Promise<{ folder: string; db: string }> {
    const folder = join(dir, name);
    await mkdir(folder);
    const db = join(folder, 'images.sqlite');
    await writeVersion1Db(db, null);
    await writeFile(`${db}.tmp-0`, 'half a commit a power cut interrupted');
    return { folder, db };
  }

  it('status, status --json, cleanup --dry-run and capture leave an old-schema DB and a stale temp file as they are', async () => {
    const { folder, db } = await deviceDir('old-schema');
    const before = await dirSnapshot(folder);
    expect(Object.keys(before)).toEqual(['images.sqlite', 'images.sqlite.tmp-0']);

    const status = bufferIo();
    expect(await main(['status', '--db', db, '--engine', engine], status), status.errors.join('\n')).toBe(0);
    expect(status.lines[0]).toBe(`state DB: ${db} (1 row(s))`);
    expect(status.lines).toContain('startup cleanup at the next start:');
    expect(await dirSnapshot(folder)).toEqual(before);

    const json = bufferIo();
    expect(
      await main(['status', '--json', '--db', db, '--engine', engine], json),
      json.errors.join('\n'),
    ).toBe(0);
    expect(JSON.parse(json.lines[0] ?? '')).toMatchObject({ rows: [{ commit: 'commit-1' }] });

    const dry = bufferIo();
    expect(
      await main(['cleanup', '--dry-run', '--db', db, '--engine', engine], dry),
      dry.errors.join('\n'),
    ).toBe(0);
    expect(dry.lines.join('\n')).toContain('startup cleanup: would delete row');

    const capture = bufferIo();
    const out = join(dir, 'old-schema.yaml');
    expect(
      await main(['capture', out, '--db', db, '--engine', engine], capture),
      capture.errors.join('\n'),
    ).toBe(0);
    expect(capture.lines[0]).toContain('captured 1 row(s)');

    expect(await dirSnapshot(folder)).toEqual(before);
  });

  it('cleanup without --dry-run does write: it migrates the file, removes the temp file and the pending row', async () => {
    // The contrast that shows the fixture above is one a read-write open changes.
    const { folder, db } = await deviceDir('read-write');
    const before = await dirSnapshot(folder);
    const io = bufferIo();
    expect(await main(['cleanup', '--db', db, '--engine', engine], io), io.errors.join('\n')).toBe(0);
    expect(io.lines.join('\n')).toContain('startup cleanup: deleted row');
    const after = await dirSnapshot(folder);
    expect(Object.keys(after)).toEqual(['images.sqlite']);
    expect(after['images.sqlite']?.bytes).not.toBe(before['images.sqlite']?.bytes);
  });

  it('status on a truncated DB fails with DB_CORRUPT naming the file, and leaves it and a temp file alone', async () => {
    const { folder, db } = await deviceDir('corrupt');
    const whole = await readFile(db);
    await writeFile(db, whole.subarray(0, Math.floor(whole.byteLength / 2)));
    const before = await dirSnapshot(folder);
    const io = bufferIo();
    expect(await main(['status', '--db', db, '--engine', engine], io)).toBe(2);
    expect(io.errors).toHaveLength(1);
    expect(io.errors[0]).toMatch(new RegExp(`^image-keeper: DB_CORRUPT: state DB ${db} is corrupt`));
    expect(await dirSnapshot(folder)).toEqual(before);
  });
});
