/**
 * Runs the real `bin/image-keeper` as a child process, the way an operator or a supervisor does: exit
 * code, signal, stdout and stderr. The child never inherits DOCKER_HOST (tests name the private socket
 * with --engine, or set DOCKER_HOST themselves) and retries back off in milliseconds, not seconds.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const CLI_BIN = fileURLToPath(new URL('../../../bin/image-keeper', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  /** stdout lines that parse as JSON objects (apply's event lines). */
  readonly events: readonly Record<string, unknown>[];
}

export interface CliOptions {
  /** Added to (undefined: removed from) the child's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly timeoutMs?: number;
}

export interface RunningCli {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly result: Promise<CliResult>;
}

export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  return startProcess(CLI_BIN, args, options);
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).result;
}

/** `script` gives the child a pseudo-terminal, so apply renders bars instead of JSON lines. */
export function runCliOnTty(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const quoted = [CLI_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const env: Record<string, string | undefined> = { COLUMNS: '120', TERM: 'xterm', ...options.env };
  return startProcess('script', ['-qfec', quoted, '/dev/null'], { ...options, env }).result;
}

function startProcess(command: string, args: readonly string[], options: CliOptions): RunningCli {
  const env: NodeJS.ProcessEnv = { ...process.env, IMAGE_KEEPER_RETRY_BASE_MS: '50' };
  for (const key of ['DOCKER_HOST', 'IMAGE_KEEPER_DB', 'IMAGE_KEEPER_CRASH_AT', 'IMAGE_KEEPER_TEST_HOOKS'])
    delete env[key];
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const started = Date.now();
  const child = spawn(command, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const result = new Promise<CliResult>((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, events: jsonLines(stdout) });
    });
  });
  return { child, result };
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not an event line.
    }
  }
  return events;
}
