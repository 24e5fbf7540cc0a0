/**
 * `image-keeper apply [target] --db <db> --engine unix://<socket>` as a real child process (run-cli.ts),
 * optionally with the test-only crash hook (IMAGE_KEEPER_TEST_HOOKS=1 IMAGE_KEEPER_CRASH_AT=
 * <point>:<n>[:<match>]) that makes it SIGKILL itself at a named crash point. stdout is a pipe, so apply
 * writes JSON event lines; they reach `onEvent` as they arrive, so a test can act in the middle of a pull.
 */
import { startCli, type CliResult } from './run-cli.js';

export interface ApplyProcessRequest {
  /** None: apply the persisted target, as the device does after a restart. */
  readonly targetFile?: string;
  readonly dbPath: string;
  readonly socketPath: string;
  /** `<crash-point>:<occurrence>[:<match>]`; none runs apply plainly. */
  readonly crashAt?: string;
  readonly onEvent?: (event: Record<string, unknown>) => void;
  readonly timeoutMs?: number;
}

export type ApplyProcessResult = CliResult;

export type ApplyProcess = (request: ApplyProcessRequest) => Promise<ApplyProcessResult>;

export const applyWithCrashHook: ApplyProcess = (request) => {
  const target = request.targetFile === undefined ? [] : [request.targetFile];
  const args = ['apply', ...target, '--db', request.dbPath, '--engine', `unix://${request.socketPath}`];
  const env =
    request.crashAt === undefined
      ? {}
      : { IMAGE_KEEPER_TEST_HOOKS: '1', IMAGE_KEEPER_CRASH_AT: request.crashAt };
  const running = startCli(args, { env, timeoutMs: request.timeoutMs ?? 120_000 });
  const onEvent = request.onEvent;
  if (onEvent !== undefined) {
    let pending = '';
    running.child.stdout.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          onEvent(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not an event line.
        }
      }
    });
  }
  return running.result;
};
