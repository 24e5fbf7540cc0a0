import { basename, dirname, join } from 'node:path';

import type { Database, SqlJsStatic, SqlValue } from 'sql.js';

import { KeeperError, assert, isKeeperError, isPowerCut } from '../../core/errors.js';
import { rowKey, type ImageRow, type NewImageRow } from '../../core/model/image-row.js';
import type { Target } from '../../core/model/target.js';
import type { FileSystem } from '../../core/ports/file-system.js';
import type { ImageDb } from '../../core/ports/image-db.js';
import type { TargetStore } from '../../core/ports/target-store.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from './migrations.js';
import { loadSqlJs } from './sqljs-loader.js';
import { sqliteFileProblem } from './sqlite-file-check.js';

export interface SqlJsStateDbOptions {
  /** Names the `.corrupt-<timestamp>` file in openOrRecover; defaults to Date.now. */
  readonly now?: () => number;
}

/** What openOrRecover did when the DB file was corrupt. */
export interface DbRecovery {
  /** The DB_CORRUPT message that triggered the recovery. */
  readonly reason: string;
  /** Where the bad file now lives; it is never deleted or overwritten. */
  readonly movedTo: string;
}

/** Set at open and after every export, and asserted, so a sql.js that resets them cannot go unnoticed. */
const PRAGMAS = { foreign_keys: 1, cell_size_check: 1, trusted_schema: 0 } as const;

const ROW_COLUMNS = 'id, name, appId, serviceId, serviceName, imageId, releaseId, "commit", dockerImageId';

/**
 * The state DB: the image table and the target, in sql.js (SQLite in memory), persisted whole after every
 * commit through the FileSystem port: export, write `<db>.tmp-<n>`, fsync it, rename it over the DB,
 * fsync the directory. A power cut at any point leaves the file holding the state before or after the
 * commit (the crash tests enumerate every such point). Stale temp files are removed at open.
 * openReadOnly gives an instance that never touches the file system after reading the DB file.
 *
 * Calls are serialised: two commits interleaving their persists could otherwise rename an older export
 * over a newer one.
 */
export class SqlJsStateDb implements ImageDb, TargetStore {
  readonly path: string;
  private readonly dir: string;
  private readonly fs: FileSystem;
  private readonly sql: SqlJsStatic;
  private db: Database;
  /** The bytes the DB file holds (or will, once the last rename is durable); restored after a failed persist. */
  private persisted: Uint8Array;
  private tmpSeq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Why the instance refuses calls: closed, or the simulated device lost power mid-call. */
  private unusable: string | null = null;
  /** Set by openReadOnly: every mutating call fails with DB_ERROR, and nothing is ever persisted. */
  readonly readOnly: boolean;

  private constructor(
    fs: FileSystem,
    path: string,
    sql: SqlJsStatic,
    db: Database,
    persisted: Uint8Array,
    readOnly = false,
  ) {
    this.fs = fs;
    this.path = path;
    this.dir = dirname(path);
    this.sql = sql;
    this.db = db;
    this.persisted = persisted;
    this.readOnly = readOnly;
  }

  /**
   * Opens the DB at `path`, creating it (mode 0600) when absent. A corrupt or truncated file fails with
   * DB_CORRUPT naming the file and the damage; the file is left untouched (see openOrRecover).
   */
  static async open(fs: FileSystem, path: string, _options: SqlJsStateDbOptions = {}): Promise<SqlJsStateDb> {
    const sql = await loadSqlJs();
    const dir = dirname(path);
    await fs.mkdirp(dir);
    await removeStaleTemps(fs, path);
    const bytes = await fs.readFile(path);
    if (bytes === null) {
      const db = new sql.Database();
      applyPragmas(db, path);
      migrate(db, path);
      const state = new SqlJsStateDb(fs, path, sql, db, new Uint8Array(0));
      // The directory may be new: make its own name durable before the first DB file lands in it.
      await fs.fsyncDir(dirname(dir));
      await state.persist();
      return state;
    }
    const db = loadExisting(sql, bytes, path);
    if (schemaVersion(db) === SCHEMA_VERSION) return new SqlJsStateDb(fs, path, sql, db, bytes);
    try {
      // Refuses a newer schema (DB_ERROR, not DB_CORRUPT: a downgrade must not discard the file).
      migrate(db, path);
    } catch (error) {
      db.close();
      throw error;
    }
    const state = new SqlJsStateDb(fs, path, sql, db, bytes);
    await state.persist();
    return state;
  }

  /**
   * Opens the DB at `path` for reading only (status, capture, dry runs): reads the file and checks it as
   * open does (a corrupt or truncated file fails with DB_CORRUPT naming it, and is left as it is), then
   * never writes, renames, deletes or fsyncs anything: stale `<db>.tmp-*` files stay for the next open,
   * an older schema is migrated in memory only (the file keeps its bytes), and a missing file reads as an
   * empty DB without being created. Mutating calls fail with DB_ERROR ("read-only"). A newer schema
   * fails with DB_ERROR, as in open.
   */
  static async openReadOnly(fs: FileSystem, path: string): Promise<SqlJsStateDb> {
    const sql = await loadSqlJs();
    const bytes = await fs.readFile(path);
    if (bytes === null) {
      const db = new sql.Database();
      applyPragmas(db, path);
      migrate(db, path);
      return new SqlJsStateDb(fs, path, sql, db, new Uint8Array(0), true);
    }
    const db = loadExisting(sql, bytes, path);
    try {
      // In memory only; refuses a newer schema (DB_ERROR) as open does.
      if (schemaVersion(db) !== SCHEMA_VERSION) migrate(db, path);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqlJsStateDb(fs, path, sql, db, bytes, true);
  }

  /**
   * Opens the DB; when it is corrupt, moves the file aside to `<db>.corrupt-<timestamp>` (never
   * overwriting an earlier one) and starts an empty DB. Nothing is lost that matters: the core adopts
   * the images still on the engine into the empty DB by digest (rows saved, no download), and an unknown
   * target means "remove nothing" until the supervisor sends one again.
   */
  static async openOrRecover(
    fs: FileSystem,
    path: string,
    options: SqlJsStateDbOptions = {},
  ): Promise<{ db: SqlJsStateDb; recovered: DbRecovery | null }> {
    try {
      return { db: await SqlJsStateDb.open(fs, path, options), recovered: null };
    } catch (error) {
      if (!isKeeperError(error, 'DB_CORRUPT')) throw error;
      const movedTo = await freeAsideName(fs, path, (options.now ?? Date.now)());
      await fs.rename(path, movedTo);
      await fs.fsyncDir(dirname(path));
      const db = await SqlJsStateDb.open(fs, path, options);
      return { db, recovered: { reason: error.message, movedTo } };
    }
  }

  listRows(): Promise<ImageRow[]> {
    return this.serialise(async () => selectRows(this.db, `SELECT ${ROW_COLUMNS} FROM image ORDER BY id`));
  }

  insertRow(row: NewImageRow): Promise<ImageRow> {
    return this.serialiseWrite('insertRow', async () => {
      const existing = selectRows(
        this.db,
        `SELECT ${ROW_COLUMNS} FROM image WHERE name = ? AND appId = ? AND serviceId = ? AND "commit" = ?`,
        [row.name, row.appId, row.serviceId, row.commit],
      )[0];
      if (existing !== undefined) {
        throw new KeeperError(
          'DB_ERROR',
          `insertRow: a row for ${rowKey(row)} already exists (id ${existing.id})`,
          {
            details: { rowId: existing.id },
          },
        );
      }
      return this.commit(() => {
        this.db.run(
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
            row.dockerImageId,
          ],
        );
        const inserted = selectRows(
          this.db,
          `SELECT ${ROW_COLUMNS} FROM image WHERE id = last_insert_rowid()`,
        )[0];
        assert(inserted !== undefined, 'the inserted row reads back');
        return inserted;
      });
    });
  }

  setDockerImageId(rowId: number, dockerImageId: string): Promise<void> {
    return this.serialiseWrite('setDockerImageId', async () => {
      if (selectRows(this.db, `SELECT ${ROW_COLUMNS} FROM image WHERE id = ?`, [rowId]).length === 0) {
        throw new KeeperError('DB_ERROR', `setDockerImageId: no image row ${rowId}`, { details: { rowId } });
      }
      await this.commit(() =>
        this.db.run('UPDATE image SET dockerImageId = ? WHERE id = ?', [dockerImageId, rowId]),
      );
    });
  }

  deleteRow(rowId: number): Promise<void> {
    return this.serialiseWrite('deleteRow', async () => {
      // Nothing to delete means nothing to persist: recovery re-runs removals, and each would cost a rewrite.
      if (selectRows(this.db, `SELECT ${ROW_COLUMNS} FROM image WHERE id = ?`, [rowId]).length === 0) return;
      await this.commit(() => this.db.run('DELETE FROM image WHERE id = ?', [rowId]));
    });
  }

  readTarget(): Promise<Target | null> {
    return this.serialise(async () => {
      const json = this.db.exec('SELECT json FROM target WHERE id = 1')[0]?.values[0]?.[0];
      if (json === undefined) return null;
      return parseTarget(json, this.path);
    });
  }

  writeTarget(target: Target): Promise<void> {
    return this.serialiseWrite('writeTarget', async () => {
      const json = JSON.stringify(target);
      await this.commit(() =>
        this.db.run(
          'INSERT INTO target (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json',
          [json],
        ),
      );
    });
  }

  /**
   * Rows and target as this instance holds them in memory, synchronously: for the simulator's invariant
   * checks, which run between two port calls and must not queue behind them. Not part of the port.
   */
  peek(): { readonly rows: ImageRow[]; readonly target: Target | null } {
    const rows = selectRows(this.db, `SELECT ${ROW_COLUMNS} FROM image ORDER BY id`);
    const json = this.db.exec('SELECT json FROM target WHERE id = 1')[0]?.values[0]?.[0];
    return { rows, target: json === undefined ? null : parseTarget(json, this.path) };
  }

  /** The PRAGMAs the adapter sets, as SQLite reports them now (for tests and diagnostics). */
  readPragmas(): Record<keyof typeof PRAGMAS, number> {
    return readPragmaValues(this.db);
  }

  /**
   * Frees the in-memory DB whatever state the instance is in, also after a simulated power cut left it
   * unusable (close() refuses then). sql.js memory is not garbage collected: an instance never freed
   * leaks its heap.
   */
  async abandon(): Promise<void> {
    await this.queue;
    if (this.unusable === 'the state DB is closed') return;
    this.unusable = 'the state DB is closed';
    this.db.close();
  }

  /** Waits for calls in flight, then frees the in-memory DB. Everything committed is already on disk. */
  close(): Promise<void> {
    return this.serialise(async () => {
      this.unusable = 'the state DB is closed';
      this.db.close();
    });
  }

  private serialise<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.unusable !== null) throw new KeeperError('DB_ERROR', `${this.unusable}: ${this.path}`);
      return work();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** serialise for a call that changes the DB: refused on a read-only instance before memory changes. */
  private serialiseWrite<T>(method: string, work: () => Promise<T>): Promise<T> {
    return this.serialise(async () => {
      this.refuseIfReadOnly(method);
      return work();
    });
  }

  private refuseIfReadOnly(what: string): void {
    if (!this.readOnly) return;
    throw new KeeperError(
      'DB_ERROR',
      `${what}: state DB ${this.path} is open read-only; nothing was changed or written`,
      { details: { path: this.path } },
    );
  }

  /** Applies `change` (autocommit SQL) to memory, then persists; on failure memory matches the file again. */
  private async commit<T>(change: () => T): Promise<T> {
    const result = change();
    await this.persist();
    return result;
  }

  private async persist(): Promise<void> {
    // Every write goes through here: a read-only instance must never reach the file system.
    this.refuseIfReadOnly('persist');
    const tmp = `${this.path}.tmp-${this.tmpSeq++}`;
    let renamed: Uint8Array | null = null;
    try {
      const bytes = this.db.export();
      // export() of sql.js ≤1.16 reopened the DB and silently reset PRAGMAs; re-apply and check.
      applyPragmas(this.db, this.path);
      await this.fs.writeFile(tmp, bytes, { mode: 0o600 });
      await this.fs.fsync(tmp);
      await this.fs.rename(tmp, this.path);
      renamed = bytes;
      await this.fs.fsyncDir(this.dir);
      this.persisted = bytes;
    } catch (error) {
      if (isPowerCut(error)) {
        // The simulated device is off: no more I/O from this instance; the simulator reopens the file.
        this.unusable = 'the state DB lost power';
        throw error;
      }
      if (renamed !== null) {
        // The file already shows the new state; only its durability is in doubt, so memory keeps it.
        this.persisted = renamed;
      } else {
        this.restoreMemory();
        await this.fs.unlink(tmp).catch((cleanupError: unknown) => {
          if (isPowerCut(cleanupError)) {
            this.unusable = 'the state DB lost power';
            throw cleanupError;
          }
        });
      }
      throw error;
    }
  }

  /** Puts memory back to what the DB file holds, after a commit that did not reach the file. */
  private restoreMemory(): void {
    this.db.close();
    this.db =
      this.persisted.byteLength === 0 ? new this.sql.Database() : new this.sql.Database(this.persisted);
    applyPragmas(this.db, this.path);
    if (this.persisted.byteLength === 0) migrate(this.db, this.path);
  }
}

function loadExisting(sql: SqlJsStatic, bytes: Uint8Array, path: string): Database {
  const problem = sqliteFileProblem(bytes);
  if (problem !== null) throw corrupt(path, problem);
  let db: Database | undefined;
  try {
    db = new sql.Database(bytes);
    const check = db.exec('PRAGMA integrity_check')[0]?.values.map((row) => String(row[0])) ?? [];
    if (check.length !== 1 || check[0] !== 'ok') {
      throw corrupt(path, `integrity_check failed: ${check.slice(0, 3).join('; ')}`);
    }
    const version = schemaVersion(db);
    if (version === 0) throw corrupt(path, 'no image-keeper schema (user_version 0)');
    if (version <= SCHEMA_VERSION) {
      const tables = new Set(
        db
          .exec("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")[0]
          ?.values.map((r) => r[0]) ?? [],
      );
      for (const name of ['image', 'image_key', 'target']) {
        if (!tables.has(name)) throw corrupt(path, `schema version ${version} but no ${name}`);
      }
    }
    applyPragmas(db, path);
    return db;
  } catch (error) {
    db?.close();
    if (error instanceof KeeperError) throw error;
    throw corrupt(path, error instanceof Error ? error.message : String(error), error);
  }
}

function corrupt(path: string, what: string, cause?: unknown): KeeperError {
  const line = what.replace(/\s+/g, ' ').trim();
  return new KeeperError('DB_CORRUPT', `state DB ${path} is corrupt: ${line}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { path },
  });
}

/** Removes `<db>.tmp-*` left by a persist that a crash interrupted: they hold an unfinished commit. */
async function removeStaleTemps(fs: FileSystem, path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const stale = (await fs.list(dir)).filter((name) => name.startsWith(prefix));
  for (const name of stale) await fs.unlink(join(dir, name));
  if (stale.length > 0) await fs.fsyncDir(dir);
}

async function freeAsideName(fs: FileSystem, path: string, now: number): Promise<string> {
  const taken = new Set(await fs.list(dirname(path)));
  const stamp = new Date(now).toISOString().replace(/:/g, '-');
  const base = `${basename(path)}.corrupt-${stamp}`;
  let name = base;
  for (let n = 1; taken.has(name); n++) name = `${base}-${n}`;
  return join(dirname(path), name);
}

function applyPragmas(db: Database, path: string): void {
  for (const [name, value] of Object.entries(PRAGMAS)) db.run(`PRAGMA ${name} = ${value}`);
  const actual = readPragmaValues(db);
  for (const [name, value] of Object.entries(PRAGMAS)) {
    assert(actual[name as keyof typeof PRAGMAS] === value, `PRAGMA ${name} holds ${value} on ${path}`, {
      actual: actual[name as keyof typeof PRAGMAS],
    });
  }
}

function readPragmaValues(db: Database): Record<keyof typeof PRAGMAS, number> {
  const read = (name: string): number => {
    const value = db.exec(`PRAGMA ${name}`)[0]?.values[0]?.[0];
    return typeof value === 'number' ? value : Number.NaN;
  };
  return {
    foreign_keys: read('foreign_keys'),
    cell_size_check: read('cell_size_check'),
    trusted_schema: read('trusted_schema'),
  };
}

function selectRows(db: Database, query: string, params: SqlValue[] = []): ImageRow[] {
  const statement = db.prepare(query);
  try {
    statement.bind(params);
    const rows: ImageRow[] = [];
    while (statement.step()) rows.push(toRow(statement.get()));
    return rows;
  } finally {
    // Freed at once: sql.js ≥1.17 keeps statements across export(), so leaked ones would pile up.
    statement.free();
  }
}

function toRow(values: SqlValue[]): ImageRow {
  const [id, name, appId, serviceId, serviceName, imageId, releaseId, commit, dockerImageId] = values;
  assert(
    typeof id === 'number' &&
      typeof name === 'string' &&
      typeof appId === 'number' &&
      typeof serviceId === 'number' &&
      typeof serviceName === 'string' &&
      typeof imageId === 'number' &&
      typeof releaseId === 'number' &&
      typeof commit === 'string' &&
      (dockerImageId === null || typeof dockerImageId === 'string'),
    'an image row has the schema types',
    { id },
  );
  return { id, name, appId, serviceId, serviceName, imageId, releaseId, commit, dockerImageId };
}

function parseTarget(json: SqlValue, path: string): Target {
  let value: unknown;
  try {
    value = typeof json === 'string' ? JSON.parse(json) : undefined;
  } catch {
    value = undefined;
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    !Array.isArray((value as Partial<Target>).services) ||
    !Array.isArray((value as Partial<Target>).dependent)
  ) {
    throw corrupt(path, 'the stored target is not a target object');
  }
  return value as Target;
}
