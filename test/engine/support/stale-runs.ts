/**
 * Cleans up after engine runs that died without their teardown (vitest killed, machine reset of a
 * worker...): a private dir whose owner process is gone has its dockerd/containerd/shim/registry
 * processes stopped by PID (found through their command lines, which name the dir) and is removed.
 * Dirs whose owner is still alive (a concurrent run) are never touched.
 */
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRIVATE_DIR_PREFIX, removePrivateDir } from './private-dir.js';
import {
  findProcessesMentioning,
  isProcessAlive,
  readProcessCmdline,
  terminateProcess,
} from './process-control.js';

const OWNER_FILE = 'owner.pid';

/** Records the current process as the owner of `dir`. */
export function claimPrivateDir(dir: string): void {
  writeFileSync(join(dir, OWNER_FILE), `${process.pid}\n`);
}

export async function sweepStaleRuns(log: (line: string) => void = () => undefined): Promise<string[]> {
  const root = realpathSync(tmpdir());
  const swept: string[] = [];
  for (const name of readdirSync(root)) {
    if (!name.startsWith(PRIVATE_DIR_PREFIX)) continue;
    const dir = join(root, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8').trim());
    } catch {
      continue; // no owner file (yet): it may be a run that is starting right now
    }
    if (isProcessAlive(owner) && (readProcessCmdline(owner) ?? '').includes('node')) continue;
    // dockerd first (it stops its containers on SIGTERM), then whatever is left (containerd, shims, registries).
    for (const pid of findProcessesMentioning(dir)) {
      if ((readProcessCmdline(pid) ?? '').includes('dockerd')) await terminateProcess(pid, 20_000);
    }
    for (const pid of findProcessesMentioning(dir)) await terminateProcess(pid, 5_000);
    try {
      removePrivateDir(dir);
      swept.push(dir);
      log(`swept stale engine run ${dir} (owner ${owner} is gone)`);
    } catch (error) {
      log(`could not sweep stale engine run ${dir}: ${(error as Error).message}`);
    }
  }
  return swept;
}
