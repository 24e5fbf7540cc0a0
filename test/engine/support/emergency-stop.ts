/**
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP during the engine suite: vitest exits within a millisecond and
 * never runs the globalSetup teardown, and dockerd, containerd, their shims and the registries were
 * spawned detached, so they would outlive it (until the next run's sweepStaleRuns). These handlers
 * stop them where the teardown cannot: synchronously, inside the signal (or exit) handler, before
 * anything else of the process runs. Only processes whose command line names the run's private
 * directory are signalled, dockerd first (it stops its containers), then the rest; then the mounts
 * under the directory go and the directory is removed.
 */
import { existsSync } from 'node:fs';
import { removePrivateDir } from './private-dir.js';
import {
  findProcessesMentioning,
  isProcessAlive,
  readProcessCmdline,
  signalProcess,
} from './process-control.js';

const pause = new Int32Array(new SharedArrayBuffer(4));
const sleepSync = (ms: number): void => void Atomics.wait(pause, 0, 0, ms);

function waitForExitSync(pids: readonly number[], timeoutMs: number): number[] {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isProcessAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    sleepSync(50);
    alive = alive.filter(isProcessAlive);
  }
  return alive;
}

/** Stops every process of the run in `dir` and removes `dir`, synchronously. Never throws. */
export function stopRunSync(dir: string, log: (line: string) => void): void {
  try {
    const first = findProcessesMentioning(dir);
    const daemons = first.filter((pid) => /\bdockerd\b/.test(readProcessCmdline(pid) ?? ''));
    for (const pid of daemons) signalProcess(pid, 'SIGTERM');
    waitForExitSync(daemons, 10_000);
    const rest = findProcessesMentioning(dir);
    for (const pid of rest) signalProcess(pid, 'SIGTERM');
    const stubborn = waitForExitSync(rest, 3_000);
    for (const pid of [...stubborn, ...findProcessesMentioning(dir)]) signalProcess(pid, 'SIGKILL');
    const left = waitForExitSync(findProcessesMentioning(dir), 5_000);
    if (existsSync(dir)) removePrivateDir(dir);
    log(
      `stopped ${first.length} process(es) of ${dir} and removed it${left.length > 0 ? ` (still alive: ${left.join(', ')})` : ''}`,
    );
  } catch (error) {
    log(`emergency stop of ${dir} failed: ${(error as Error).message}`);
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Installs SIGINT/SIGTERM/SIGHUP and exit handlers that stop the run in `dir` (stopRunSync), then run
 * `after` (synchronous, must not throw); after a
 * signal it is raised again once no other handler is left, so the process still ends by it. Returns
 * the function that removes the handlers (call it once the normal teardown has finished).
 */
export function stopRunOnSignals(
  dir: string,
  log: (line: string) => void,
  after: () => void = () => undefined,
): () => void {
  let stopped = false;
  const stop = (why: string): void => {
    if (stopped) return;
    stopped = true;
    log(`${why}: stopping the private engine and registries`);
    stopRunSync(dir, log);
    after();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    stop(signal);
    uninstall();
    // vitest has handlers of its own (they exit); with none left, end the way the signal would.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const onExit = (): void => stop('exit before the teardown');
  const uninstall = (): void => {
    for (const signal of SIGNALS) process.off(signal, onSignal);
    process.off('exit', onExit);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  process.on('exit', onExit);
  return uninstall;
}
