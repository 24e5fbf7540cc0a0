/**
 * Fixtures for the tests that play a later release (a schema one migration newer, see their vi.mock of
 * migrations.js): a DB file at the shipped schema, version 1, is then an older schema. Shared by the
 * adapter's and the CLI's read-only tests.
 */
import { readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { vi } from 'vitest';

import { SAMPLE_TARGET, sampleRow } from '../../test/contract/image-db-contract.js';
import type * as Migrations from './migrations.js';
import { loadSqlJs } from './sqljs-loader.js';

/** Every file in `dir`: name, bytes and mtime, so "unchanged" means name-for-name and byte-for-byte. */
export async function dirSnapshot(dir: string): Promise<Record<string, { bytes: string; mtimeMs: number }>> {
  const out: Record<string, { bytes: string; mtimeMs: number }> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    out[name] = { bytes: (await readFile(path)).toString('base64'), mtimeMs: (await stat(path)).mtimeMs };
  }
  return out;
}

/** A DB file at schema version 1 (the shipped migrations, whatever the test mocks), with one row and a target. */
export async function writeVersion1Db(path: string, dockerImageId: string | null): Promise<void> {
  const real = await vi.importActual<typeof Migrations>('./migrations.js');
  const SQL = await loadSqlJs();
  const raw = new SQL.Database();
  real.migrate(raw, path, real.MIGRATIONS);
  const row = sampleRow(1);
  raw.run(
    `INSERT INTO image (name, appId, serviceId, serviceName, imageId, releaseId, "commit", dockerImageId)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      row.name,
      row.appId,
      row.serviceId,
      row.serviceName,
      row.imageId,
      row.releaseId,
      row.commit,
      dockerImageId,
    ],
  );
  raw.run('INSERT INTO target (id, json) VALUES (1, ?)', [JSON.stringify(SAMPLE_TARGET)]);
  const version = raw.exec('PRAGMA user_version')[0]?.values[0]?.[0];
  if (version !== 1)
    throw new Error(`writeVersion1Db: the shipped schema is version ${String(version)}, not 1`);
  await writeFile(path, raw.export(), { mode: 0o600 });
  raw.close();
  // An mtime in the past, so a rewrite within the same clock tick cannot hide.
  await utimes(path, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
}
