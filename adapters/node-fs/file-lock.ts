import { link, open, readFile, unlink } from 'node:fs/promises';

import { KeeperError } from '../../core/errors.js';

export interface FileLock {
  readonly path: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): Promise<void>;
}

/**
 * Takes `<db>.lock` so only one image-keeper uses a state DB. The lock file holds the holder's pid and
 * the kernel boot id; a lock is stale (and taken over) when that process is dead or the device rebooted
 * since (after a power cut the pid may belong to an unrelated process). The file appears with its
 * content complete (written to a private temp file, then hard-linked into place), so a reader never
 * mistakes a lock being written for a stale one.
 *
 * Limit: two processes that find the same stale lock at the same instant may both take it over; the
 * CLI is started by one supervisor, so this window is accepted rather than solved.
 */
export async function acquireLock(path: string): Promise<FileLock> {
  const content = `${process.pid}\n${await bootId()}\n`;
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
  };
}

interface Holder {
  readonly pid: number;
  readonly bootId: string;
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
  const [pidLine = '', bootLine = ''] = text.split('\n');
  const pid = Number(pidLine);
  return Number.isSafeInteger(pid) && pid > 0 ? { pid, bootId: bootLine } : { pid: 0, bootId: '' };
}

async function isStale(holder: Holder): Promise<boolean> {
  if (holder.pid === 0) return true;
  const currentBoot = await bootId();
  if (holder.bootId !== '' && currentBoot !== '' && holder.bootId !== currentBoot) return true;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else, so it is alive.
    return errorCode(error) === 'ESRCH';
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
