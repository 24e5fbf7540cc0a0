/**
 * Signalling and waiting for processes by PID. Used only for processes the engine test
 * infrastructure spawned itself (dockerd, its containerd and shims, docker-registry): callers
 * always check a process's command line against their own private directory before signalling it.
 */
import { readFileSync, readdirSync } from 'node:fs';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True when `pid` exists and is not a zombie (a zombie has exited but not been reaped). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM means it exists but belongs to someone else: treat it as alive (and never ours).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: "pid (comm) S ..."; comm may contain spaces and parentheses, so split at the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The NUL-separated command line of `pid`, joined with spaces; undefined if it has gone. */
export function readProcessCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return undefined;
  }
}

/** PIDs of live processes whose command line contains `needle` (an absolute private path). */
export function findProcessesMentioning(needle: string): number[] {
  if (!needle.startsWith('/') || needle.length < 8) {
    throw new Error(`findProcessesMentioning needs a specific absolute path, got ${JSON.stringify(needle)}`);
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const cmdline = readProcessCmdline(pid);
    if (cmdline?.includes(needle) && isProcessAlive(pid)) pids.push(pid);
  }
  return pids;
}

/** Polls until `pid` is gone (or a zombie). Resolves true if it exited within `timeoutMs`. */
export async function waitForProcessExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Sends `signal` to `pid`; ignores a process that has already gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * SIGTERM, then SIGKILL if the process is still there after `graceMs`. Resolves once it is gone.
 * Returns which signal finished it ('none' if it was already gone).
 */
export async function terminateProcess(
  pid: number,
  graceMs: number,
): Promise<'none' | 'SIGTERM' | 'SIGKILL'> {
  if (!isProcessAlive(pid)) return 'none';
  signalProcess(pid, 'SIGTERM');
  if (await waitForProcessExit(pid, graceMs)) return 'SIGTERM';
  signalProcess(pid, 'SIGKILL');
  if (await waitForProcessExit(pid, 10_000)) return 'SIGKILL';
  throw new Error(`process ${pid} survived SIGKILL for 10 s`);
}
