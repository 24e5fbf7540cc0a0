import { writeSync } from 'node:fs';
import { KeeperError } from '../core/errors.js';
import type { CrashPoint, CrashPoints } from '../core/ports/crash-points.js';
import { CRASH_POINTS } from '../core/ports/crash-points.js';

/** `IMAGE_KEEPER_CRASH_AT=<crash-point>[:<occurrence>[:<match>]]`, parsed. */
export interface CrashSpec {
  readonly point: CrashPoint;
  /** The n-th time the point is reached (among those matching), from 1. */
  readonly occurrence: number;
  /** Only crash points whose detail contains this text count. */
  readonly match?: string;
}

export const CRASH_AT_ENV = 'IMAGE_KEEPER_CRASH_AT';
export const TEST_HOOKS_ENV = 'IMAGE_KEEPER_TEST_HOOKS';

/**
 * The match is everything after the second colon, so it may itself contain colons (references such as
 * `127.0.0.1:5000/app/main@sha256:...` do).
 */
export function parseCrashSpec(text: string): CrashSpec {
  const [point = '', occurrenceText, ...rest] = text.split(':');
  if (!(CRASH_POINTS as readonly string[]).includes(point)) {
    throw new KeeperError(
      'USAGE',
      `${CRASH_AT_ENV}: unknown crash point '${point}'; known: ${CRASH_POINTS.join(', ')}`,
    );
  }
  let occurrence = 1;
  if (occurrenceText !== undefined && occurrenceText !== '') {
    if (!/^[1-9]\d{0,8}$/.test(occurrenceText)) {
      throw new KeeperError(
        'USAGE',
        `${CRASH_AT_ENV}: occurrence must be a positive integer, got '${occurrenceText}'`,
      );
    }
    occurrence = Number(occurrenceText);
  }
  const match = rest.length > 0 ? rest.join(':') : undefined;
  return {
    point: point as CrashPoint,
    occurrence,
    ...(match !== undefined && match !== '' ? { match } : {}),
  };
}

/**
 * The crash hook from the environment: honoured only when test hooks are switched on, so a stray
 * variable on a device never kills the keeper. Returns the spec, or a warning to print, or nothing.
 */
export function crashHookFrom(env: Readonly<Record<string, string | undefined>>): {
  spec?: CrashSpec;
  warning?: string;
} {
  const text = env[CRASH_AT_ENV];
  if (text === undefined || text === '') return {};
  if (env[TEST_HOOKS_ENV] !== '1') {
    return { warning: `${CRASH_AT_ENV} ignored: it is a test hook and ${TEST_HOOKS_ENV}=1 is not set` };
  }
  return { spec: parseCrashSpec(text) };
}

/** Counts how often the core reaches the armed point and calls `crash` at the chosen occurrence. */
export class CountingCrashPoints implements CrashPoints {
  private seen = 0;

  constructor(
    private readonly spec: CrashSpec,
    private readonly crash: (point: CrashPoint, occurrence: number, detail: string) => void,
  ) {}

  reach(point: CrashPoint, detail: string): void {
    if (point !== this.spec.point) return;
    if (this.spec.match !== undefined && !detail.includes(this.spec.match)) return;
    this.seen++;
    if (this.seen === this.spec.occurrence) this.crash(point, this.seen, detail);
  }
}

/**
 * A real power cut as far as this process goes: SIGKILL to itself, so no finally block, lock release or
 * buffered write runs. One line goes to stderr first, synchronously, so tests can tell the hook fired.
 */
export function killThisProcess(point: CrashPoint, occurrence: number, detail: string): void {
  writeSync(2, `image-keeper: crash hook: SIGKILL at ${point} #${occurrence} (${detail})\n`);
  process.kill(process.pid, 'SIGKILL');
}
