import { readFileSync, unlinkSync } from 'node:fs';
import { link, open, readFile, readdir, unlink } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { KeeperError } from '../../core/errors.js';

export interface FileLock {
  readonly path: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): Promise<void>;
  /** The same, synchronously (for signal handlers, which must not yield before the process exits). */
  releaseSync(): void;
}

/**
 * While the lock is held, SIGINT and SIGTERM (Ctrl-C, `docker stop`, a supervisor stopping us) release
 * it and end the process at once with 128 + the signal's number, after one line on stderr. Nothing of
 * ours runs after the release, so no second instance can overlap this one; whatever was in flight is
 * cut like a power cut would cut it, which the protocol is built for (the state DB commits atomically).
 * Returns the function that removes the handlers (call it before releasing normally).
 */
export function releaseOnSignals(
  lock: FileLock,
  say: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    try {
      lock.releaseSync();
    } finally {
      say(
        `image-keeper: stopped by ${signal}; ${lock.path} released, the state is kept (run again to continue)`,
      );
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Takes `<db>.lock` so only one image-keeper uses a state DB. The lock file holds the holder's pid, the
 * kernel boot id and the holder's start time (Linux: field 22 of /proc/<pid>/stat, in clock ticks since
 * boot). A lock is stale (and taken over) when:
 *  - its pid is this process's own: one process never takes the lock twice, so it is a dead holder's
 *    pid that came round again (a container restarted after a SIGKILL numbers its processes alike);
 *  - the device rebooted since (another boot id);
 *  - that process is dead, or a process with that pid started at another time (the pid was reused).
 * A live pid whose start time cannot be read (a lock written by an older version) still counts as the
 * holder. The file appears with its content complete (written to a private temp file, then hard-linked
 * into place), so a reader never mistakes a lock being written for a stale one; temp files that a
 * killed holder left behind are removed once the lock is ours.
 *
 * Limit: two processes that find the same stale lock at the same instant may both take it over; the
 * CLI is started by one supervisor, so this window is accepted rather than solved.
 */
export async function acquireLock(path: string): Promise<FileLock> {
  const content = `${process.pid}\n${await bootId()}\n${(await startTimeOf(process.pid)) ?? ''}\n`;
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, path);
        await sweepLeakedTempFiles(path, tmp);
        return ownedLock(path, content);
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      const holder = await readHolder(path);
      if (holder === 'gone') continue;
      if (attempt === 0 && (await isStale(holder))) {
        await unlink(path).catch(ignoreMissing);
        continue;
      }
      throw new KeeperError('DB_LOCKED', `another image-keeper (pid ${holder.pid}) holds ${path}`, {
        details: { path, pid: holder.pid },
      });
    }
  } finally {
    await unlink(tmp).catch(ignoreMissing);
  }
}

function ownedLock(path: string, content: string): FileLock {
  return {
    path,
    async release() {
      const now = await readFile(path, 'utf8').catch(() => null);
      if (now === content) await unlink(path).catch(ignoreMissing);
    },
    releaseSync() {
      let now: string;
      try {
        now = readFileSync(path, 'utf8');
      } catch {
        return;
      }
      if (now !== content) return;
      try {
        unlinkSync(path);
      } catch (error) {
        ignoreMissing(error);
      }
    },
  };
}

interface Holder {
  readonly pid: number;
  readonly bootId: string;
  /** The holder's start time as written; empty in locks of older versions. */
  readonly startTime: string;
}

/** The lock's holder; pid 0 when the file is not one acquireLock wrote (it links only complete files). */
async function readHolder(path: string): Promise<Holder | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 'gone';
    throw error;
  }
  return parseHolder(text);
}

function parseHolder(text: string): Holder {
  const [pidLine = '', bootLine = '', startLine = ''] = text.split('\n');
  const pid = /^\d+$/.test(pidLine) ? Number(pidLine) : 0;
  return Number.isSafeInteger(pid) && pid > 0
    ? { pid, bootId: bootLine, startTime: startLine }
    : { pid: 0, bootId: '', startTime: '' };
}

async function isStale(holder: Holder): Promise<boolean> {
  if (holder.pid === 0) return true;
  if (holder.pid === process.pid) return true;
  const currentBoot = await bootId();
  if (holder.bootId !== '' && currentBoot !== '' && holder.bootId !== currentBoot) return true;
  if (!isAlive(holder.pid)) return true;
  if (holder.startTime === '') return false;
  const startTime = await startTimeOf(holder.pid);
  // Unreadable (gone meanwhile, or /proc hides it): the kill(0) above said alive, so it holds.
  if (startTime === undefined) return !isAlive(holder.pid);
  return startTime !== holder.startTime;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else, so it is alive.
    return errorCode(error) !== 'ESRCH';
  }
}

/**
 * When process `pid` started (Linux: /proc/<pid>/stat field 22, clock ticks since boot), as text;
 * undefined where it cannot be read. With the boot id it names one process for good: a pid reused
 * after the holder died has another start time.
 */
export async function startTimeOf(pid: number): Promise<string | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTime = fields[22 - 3];
  return startTime !== undefined && /^\d+$/.test(startTime) ? startTime : undefined;
}

/**
 * Removes `<lock>.<pid>.<ms>.tmp` files that holders killed between writing and linking left behind:
 * those whose process is dead, or whose complete content names another process (another boot, or the
 * pid reused). A temp file of a live process that is still being written is left alone.
 */
async function sweepLeakedTempFiles(path: string, ownTmp: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const match = /^(\d+)\.\d+\.tmp$/.exec(name.startsWith(prefix) ? name.slice(prefix.length) : '');
    const file = join(dir, name);
    if (!match || file === ownTmp) continue;
    const pid = Number(match[1]);
    if (pid === process.pid) continue; // another acquire of this process may be writing it
    let leaked = !isAlive(pid);
    if (!leaked) {
      const text = await readFile(file, 'utf8').catch(() => '');
      const holder = parseHolder(text);
      leaked = text.split('\n').length >= 4 && holder.pid === pid && (await isStale(holder));
    }
    if (leaked) await unlink(file).catch(() => undefined);
  }
}

/** The kernel's id for this boot (Linux); empty where there is none, and then only the pid counts. */
async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return '';
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function ignoreMissing(error: unknown): void {
  if (errorCode(error) !== 'ENOENT') throw error;
}
