import type { Database } from 'sql.js';

import { KeeperError } from '../../core/errors.js';

export interface Migration {
  /** The `PRAGMA user_version` the DB has once this migration ran. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

/** Append only: a released migration never changes, a new schema is a new entry. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'image table keyed by (name, appId, serviceId, commit); single-row target',
    sql: `
      CREATE TABLE image (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        appId INTEGER NOT NULL,
        serviceId INTEGER NOT NULL,
        serviceName TEXT NOT NULL,
        imageId INTEGER NOT NULL,
        releaseId INTEGER NOT NULL,
        "commit" TEXT NOT NULL,
        dockerImageId TEXT NULL
      ) STRICT;
      CREATE UNIQUE INDEX image_key ON image (name, appId, serviceId, "commit");
      CREATE TABLE target (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        json TEXT NOT NULL
      ) STRICT;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Database): number {
  const value = db.exec('PRAGMA user_version')[0]?.values[0]?.[0];
  if (typeof value !== 'number') throw new KeeperError('DB_ERROR', 'PRAGMA user_version returned no number');
  return value;
}

/**
 * Brings the in-memory DB up to the last of `migrations` (SCHEMA_VERSION for MIGRATIONS), each migration
 * in its own transaction together with its user_version bump, so a failure leaves the previous version
 * intact. Only memory changes: the caller persists afterwards (or, read-only, never). Returns the version
 * it started from. `migrations` is a parameter so tests can stand for a later release that meets an
 * older file.
 */
export function migrate(db: Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const from = schemaVersion(db);
  const latest = migrations.length;
  if (from > latest) {
    throw new KeeperError(
      'DB_ERROR',
      `state DB ${file} has schema version ${from}, newer than this image-keeper supports (${latest})`,
      { details: { path: file, version: from, supported: latest } },
    );
  }
  for (const migration of migrations) {
    if (migration.version <= from) continue;
    db.run('BEGIN');
    try {
      db.exec(migration.sql);
      db.run(`PRAGMA user_version = ${migration.version}`);
      db.run('COMMIT');
    } catch (error) {
      db.run('ROLLBACK');
      throw new KeeperError('DB_ERROR', `state DB ${file}: migration ${migration.version} failed`, {
        cause: error,
        details: { path: file, version: migration.version },
      });
    }
  }
  return from;
}
