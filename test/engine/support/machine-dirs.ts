/**
 * Directories outside the private dir that the engine binaries create at fixed paths: dockerd 20.10's
 * plugin dir /run/docker/plugins (getPluginExecRoot is a constant on Linux) and the containerd shims'
 * socket dir /run/containerd/s (the shim's socketRoot is a constant). The engine setup notes which of
 * them did not exist before the run and, at the end, removes those that are empty again, and only when
 * no other dockerd or containerd runs on the machine (it might be using them).
 */
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { basename } from 'node:path';
import { readProcessCmdline } from './process-control.js';

/** Deepest first, so a parent is tried after its child. */
const FIXED_DIRS = ['/run/containerd/s', '/run/containerd', '/run/docker/plugins', '/run/docker'];

/** Notes which fixed dirs are missing now; the returned function removes those (empty) afterwards. */
export function noteMachineDirs(): (log: (line: string) => void) => void {
  const missing = FIXED_DIRS.filter((dir) => !existsSync(dir));
  return (log) => {
    if (missing.length === 0) return;
    const others = otherEngineDaemons();
    if (others.length > 0) {
      log(
        `left ${missing.filter(existsSync).join(', ') || 'nothing'} in place: other engine daemons run (pids ${others.join(', ')})`,
      );
      return;
    }
    const removed: string[] = [];
    for (const dir of missing) {
      try {
        if (existsSync(dir) && readdirSync(dir).length === 0) {
          rmdirSync(dir);
          removed.push(dir);
        }
      } catch {
        // Not empty after all, or not ours to remove: leave it.
      }
    }
    if (removed.length > 0) log(`removed ${removed.join(', ')} (created by this run's dockerd/containerd)`);
  };
}

/** PIDs of running dockerd/containerd processes (call after ours have stopped). */
function otherEngineDaemons(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv0 = (readProcessCmdline(Number(entry)) ?? '').split(' ')[0] ?? '';
    if (['dockerd', 'containerd'].includes(basename(argv0))) pids.push(Number(entry));
  }
  return pids;
}
