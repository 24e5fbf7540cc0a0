/**
 * The one temporary directory a run of the engine suite owns. It lives directly in os.tmpdir()
 * under a short, recognisable name, so the dockerd socket inside it stays far below the 108-byte
 * unix socket path limit, and removal refuses anything that does not look like ours.
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { unmountAllUnder } from './mounts.js';

/** Every private directory's name starts with this; used to recognise (and sweep) our own dirs. */
export const PRIVATE_DIR_PREFIX = 'ik-engine-';

/** Longest socket path we accept inside the dir (sun_path is 108 bytes including the NUL). */
export const MAX_SOCKET_PATH_BYTES = 100;

export function createPrivateDir(): string {
  const dir = mkdtempSync(join(realpathSync(tmpdir()), PRIVATE_DIR_PREFIX));
  // The deepest socket we create is <dir>/e/docker.sock; containerd's is <dir>/e/exec/containerd/containerd.sock.
  const deepest = join(dir, 'e', 'exec', 'containerd', 'containerd.sock');
  if (Buffer.byteLength(deepest) > MAX_SOCKET_PATH_BYTES) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `os.tmpdir() (${tmpdir()}) is too long for unix socket paths (${deepest} is ` +
        `${Buffer.byteLength(deepest)} bytes); set TMPDIR to a short directory such as /tmp`,
    );
  }
  return dir;
}

/** True if `dir` is (or is inside) a directory created by createPrivateDir. */
export function isPrivateDir(dir: string): boolean {
  const root = realpathSync(tmpdir());
  let current = dir;
  while (dirname(current) !== current) {
    if (dirname(current) === root) return basename(current).startsWith(PRIVATE_DIR_PREFIX);
    current = dirname(current);
  }
  return false;
}

/** Unmounts whatever dockerd left mounted below `dir`, then deletes it. Refuses foreign paths. */
export function removePrivateDir(dir: string): void {
  if (!isPrivateDir(dir)) {
    throw new Error(
      `refusing to delete ${dir}: not inside a ${PRIVATE_DIR_PREFIX}* directory in ${tmpdir()}`,
    );
  }
  unmountAllUnder(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
