/**
 * Copies the private dockerd's and registry's logs out of a run's private dir before it is
 * deleted, so an error that names a log file still points at something that exists.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/** Directory name prefix of kept logs in os.tmpdir() (never swept automatically). */
export const KEPT_LOGS_PREFIX = 'ik-logs-';

/** Copies every *.log below `rootDir` into a fresh os.tmpdir()/ik-logs-XXXXXX; returns it (undefined if none). */
export function keepLogs(rootDir: string): string | undefined {
  if (!existsSync(rootDir)) return undefined;
  const logs = findLogs(rootDir);
  if (logs.length === 0) return undefined;
  const target = mkdtempSync(join(realpathSync(tmpdir()), KEPT_LOGS_PREFIX));
  for (const log of logs) copyFileSync(log, join(target, relative(rootDir, log).replaceAll('/', '_')));
  return target;
}

function findLogs(dir: string, depth = 0): string[] {
  if (depth > 2) return []; // logs sit in <root>/e and <root>/r; never walk into data-roots
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isFile() && entry.endsWith('.log')) found.push(path);
    else if (stat?.isDirectory() && !['data', 'exec', 'storage', 'build'].includes(entry))
      found.push(...findLogs(path, depth + 1));
  }
  return found;
}
