import { access, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DockerEngine } from '../adapters/docker/docker-engine.js';
import { MemoryImageDb } from '../adapters/memory/memory-image-db.js';
import { acquireLock, releaseOnSignals } from '../adapters/node-fs/file-lock.js';
import type { FileLock } from '../adapters/node-fs/file-lock.js';
import { NodeFileSystem } from '../adapters/node-fs/node-file-system.js';
import type { DbRecovery } from '../adapters/sqljs/sqljs-image-db.js';
import { SqlJsStateDb } from '../adapters/sqljs/sqljs-image-db.js';
import type { KeeperConfig } from '../core/config.js';
import { KeeperError, isKeeperError } from '../core/errors.js';
import type { KeeperDeps } from '../core/keeper.js';
import { ImageKeeper } from '../core/keeper.js';
import type { Clock } from '../core/ports/clock.js';
import type { ContainerControl } from '../core/ports/container-control.js';
import type { CrashPoints } from '../core/ports/crash-points.js';
import { NO_CRASH_POINTS } from '../core/ports/crash-points.js';
import type { Engine } from '../core/ports/engine.js';
import type { EventSink } from '../core/ports/event-sink.js';
import type { ImageDb } from '../core/ports/image-db.js';
import type { TargetStore } from '../core/ports/target-store.js';
import { CountingCrashPoints, killThisProcess } from './crash-hook.js';
import type { DeviceSettings } from './device-options.js';

export interface DeviceRequest {
  readonly settings: DeviceSettings;
  readonly events?: EventSink;
  /**
   * 'write' (apply): a missing DB is created (mode 0600, in a directory created with mode 0700).
   * 'no-create' (cleanup): the DB's directory and the lock are made, but a missing DB is not created: it
   * reads as an empty one. 'read-only' (status, capture, cleanup --dry-run): nothing is created or
   * written; an existing DB is opened with SqlJsStateDb.openReadOnly (stale temp files stay, an older
   * schema is migrated in memory only, and a write through `state` fails with DB_ERROR); a missing DB
   * (or DB directory) reads as an empty one; the lock is taken only when the directory exists (a lock
   * file for the command's duration, removed after), so a running apply still stops it.
   */
  readonly access: 'write' | 'no-create' | 'read-only';
}

/** An opened device: the lock is held and the engine answered, until the callback of withDevice returns. */
export interface Device {
  readonly settings: DeviceSettings;
  readonly engine: Engine & ContainerControl;
  readonly state: ImageDb & TargetStore;
  /** False when the DB file did not exist before this command. */
  readonly dbExisted: boolean;
  /** Set when --recover-db moved a corrupt DB aside. */
  readonly recovered: DbRecovery | null;
  /** The core over the real ports. */
  readonly keeper: ImageKeeper;
  /** The crash hook (IMAGE_KEEPER_CRASH_AT), or the no-op: pass it to keepers over the real ports only. */
  readonly crashPoints: CrashPoints;
  /**
   * The core with the same config over other ports: dry runs use a copy of the rows and a DryRunEngine
   * (and no crash points: a pretend cleanup must not cut power).
   */
  keeperOver(
    ports: Pick<KeeperDeps, 'db' | 'targets' | 'engine' | 'containers'> & {
      readonly events?: EventSink;
      readonly crashPoints?: CrashPoints;
    },
  ): ImageKeeper;
}

export const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Opens the device in this order: the DB's directory (made unless read-only), the lock next to the DB
 * (a second instance fails here at once), the engine (it must answer before anything is written), the
 * DB. Runs `work`, then
 * closes the DB and releases the lock whatever happened. SIGINT and SIGTERM release it and exit with
 * 128 + the signal (releaseOnSignals). A SIGKILL skips the release: the lock names a dead pid and the
 * next start takes it over.
 */
export async function withDevice<T>(
  request: DeviceRequest,
  work: (device: Device) => Promise<T>,
): Promise<T> {
  const { settings } = request;
  const { dbPath } = settings;
  const dir = dirname(dbPath);
  const readOnly = request.access === 'read-only';
  if (readOnly && settings.recoverDb) {
    throw new KeeperError(
      'USAGE',
      '--recover-db changes the state DB; a read-only command (or a dry run) cannot take it',
    );
  }
  if (!readOnly) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw systemError(error, `cannot create the state DB directory ${dir}`);
    }
  }
  let lock: FileLock | undefined;
  // Read-only on a device without a DB directory: nothing to lock, and nothing is created.
  if (!readOnly || (await exists(dir))) {
    try {
      lock = await acquireLock(`${dbPath}.lock`);
    } catch (error) {
      throw systemError(error, `cannot take the lock ${dbPath}.lock`);
    }
  }
  // SIGINT/SIGTERM (Ctrl-C, docker stop) release the lock and exit 128+signal at once.
  const keepSignals = lock ? releaseOnSignals(lock) : () => {};
  try {
    const engine = DockerEngine.fromUrl(settings.engineUrl, {
      ...(settings.pullIdleTimeoutMs !== undefined ? { pullIdleTimeoutMs: settings.pullIdleTimeoutMs } : {}),
    });
    await engine.ping();
    const fs = new NodeFileSystem();
    const dbExisted = await exists(dbPath);
    let sqlDb: SqlJsStateDb | undefined;
    let recovered: DbRecovery | null = null;
    try {
      if (dbExisted || request.access === 'write') {
        if (readOnly) sqlDb = await SqlJsStateDb.openReadOnly(fs, dbPath);
        else if (settings.recoverDb)
          ({ db: sqlDb, recovered } = await SqlJsStateDb.openOrRecover(fs, dbPath));
        else sqlDb = await SqlJsStateDb.open(fs, dbPath);
      }
    } catch (error) {
      if (isKeeperError(error, 'DB_CORRUPT')) {
        throw new KeeperError(
          'DB_CORRUPT',
          `${error.message}; the file is left as it is (apply or cleanup with --recover-db moves it aside and adopts the engine's images)`,
          {
            cause: error,
            details: error.details,
          },
        );
      }
      throw systemError(error, `cannot open the state DB ${dbPath}`);
    }
    const state: ImageDb & TargetStore = sqlDb ?? new MemoryImageDb();
    const config: Partial<KeeperConfig> =
      settings.retryBaseMs !== undefined ? { retryBaseMs: settings.retryBaseMs } : {};
    const crashPoints: CrashPoints = settings.crash
      ? new CountingCrashPoints(settings.crash, killThisProcess)
      : NO_CRASH_POINTS;
    const keeperOver: Device['keeperOver'] = (ports) =>
      new ImageKeeper({ crashPoints: NO_CRASH_POINTS, ...ports, clock: REAL_CLOCK, config });
    const device: Device = {
      settings,
      engine,
      state,
      dbExisted,
      recovered,
      crashPoints,
      keeper: keeperOver({
        db: state,
        targets: state,
        engine,
        containers: engine,
        crashPoints,
        ...(request.events ? { events: request.events } : {}),
      }),
      keeperOver,
    };
    try {
      return await work(device);
    } catch (error) {
      throw systemError(error, `state DB ${dbPath}`);
    } finally {
      await sqlDb?.close();
    }
  } finally {
    keepSignals();
    await lock?.release();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Node's file errors (EACCES, EROFS, ENOSPC from paths the adapters do not map) become one-line
 * KeeperErrors; anything else passes unchanged.
 */
function systemError(error: unknown, what: string): unknown {
  if (isKeeperError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const syscall = (error as { syscall?: unknown } | null)?.syscall;
  if (typeof code !== 'string' || typeof syscall !== 'string') return error;
  const message = (error as Error).message;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new KeeperError('DISK_FULL', `${what}: no space left on device (${message})`, { cause: error });
  return new KeeperError('DB_ERROR', `${what}: ${message}`, { cause: error });
}
