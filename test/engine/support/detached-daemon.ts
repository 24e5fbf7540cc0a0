import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync } from 'node:fs';

export interface DetachedDaemon {
  readonly child: ChildProcess;
  /** Set if the spawn itself failed (binary missing, not executable). */
  spawnError(): Error | undefined;
  /** Set once the daemon has exited, with how. */
  exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

/**
 * Starts a daemon detached, its output appended to `logFile`: it outlives whichever process (the
 * globalSetup or a test worker) spawned it, and is tracked and stopped by PID.
 */
export function spawnDetachedDaemon(
  binary: string,
  args: readonly string[],
  logFile: string,
  env: NodeJS.ProcessEnv,
): DetachedDaemon {
  appendFileSync(logFile, `\n=== ${new Date().toISOString()} starting ${binary} ${args.join(' ')}\n`);
  const fd = openSync(logFile, 'a');
  let spawnError: Error | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let child: ChildProcess;
  try {
    child = spawn(binary, [...args], { detached: true, stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  child.once('error', (error) => (spawnError = error));
  child.once('exit', (code, signal) => (exit = { code, signal }));
  child.unref();
  return { child, spawnError: () => spawnError, exit: () => exit };
}
