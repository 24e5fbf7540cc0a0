/**
 * Mount points below a private directory. dockerd bind-mounts its data-root onto itself and leaves
 * overlay and netns mounts behind when it is killed; they must go before the directory is removed.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function listMountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => decodeMountPath(line.split(' ')[4] ?? ''))
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(prefix));
  return [...new Set(mountPoints)].sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or below `dir` (plain umount, then a lazy one for busy mounts).
 * Throws if anything is still mounted afterwards, so nobody deletes a tree through a live mount.
 */
export function unmountAllUnder(dir: string): void {
  for (let round = 0; round < 5; round += 1) {
    const mounts = listMountsUnder(dir);
    if (mounts.length === 0) return;
    for (const mountPoint of mounts) {
      const plain = spawnSync('umount', [mountPoint], { stdio: 'ignore' });
      if (plain.status !== 0) spawnSync('umount', ['-l', mountPoint], { stdio: 'ignore' });
    }
  }
  const left = listMountsUnder(dir);
  if (left.length > 0) {
    throw new Error(`could not unmount ${left.length} mount(s) under ${dir}: ${left.join(', ')}`);
  }
}

function decodeMountPath(raw: string): string {
  return raw.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
