import { KeeperError } from '../../core/errors.js';
import type { CrashPoint, CrashPoints } from '../../core/ports/crash-points.js';
import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import type { ArmedCut } from './armed-cuts.js';
import { ArmedCuts } from './armed-cuts.js';

export type { ArmedCut } from './armed-cuts.js';

/**
 * Crash points reached INSIDE an engine call, between two layers of a pull or delta: no port-call
 * boundary falls there, so each reach is a step of its own (a cut there keeps the layers done so far).
 * Every other point is reached right after a port call returned, so a cut there is the same crash
 * state as a cut before the next call.
 */
export const INTERIOR_POINTS: ReadonlySet<CrashPoint> = new Set<CrashPoint>(['mid-pull', 'mid-delta']);

/**
 * Decides where power goes out. Two kinds of cut: at the k-th step (every port call is a step, and so
 * is every reach of an interior crash point, so exhaustive sweeps enumerate k), and at a named crash
 * point inside the protocol. Counts how often each named point was reached, and how often power went
 * out there, for coverage.
 *
 * Once power is out it stays out: every later step throws again until the device boots. A core that
 * swallowed the cut's error cannot carry on as if nothing happened (the runner reports it).
 */
export class PowerController implements CrashPoints {
  /** Steps (port calls and interior crash points) made since this controller was created (across restarts). */
  calls = 0;
  readonly hits = new Map<CrashPoint, number>(CRASH_POINTS.map((p) => [p, 0]));
  /** Cuts that landed at each named crash point (by name, or by number at an interior point). */
  readonly cutsAt = new Map<CrashPoint, number>(CRASH_POINTS.map((p) => [p, 0]));
  /** Power is out: set by a cut, cleared by `restore` when the device boots. */
  off = false;
  private offReason = '';
  /** The non-interior point reached since the last step: a cut before the next call lands there. */
  private lastReached: CrashPoint | undefined;
  /**
   * Durable-state epochs. A read changes nothing durable, so cuts before two steps with only reads
   * between them leave the same durable state: the same crash state. The epoch moves after every step
   * that may have changed durable state (a mutating port call, a file-system call, a crash point, a
   * scenario step, a boot); `distinctSteps` lists the first step of each epoch, where sweeps cut.
   */
  private epoch = 0;
  private epochOfLastStep = -1;
  readonly distinctSteps: number[] = [];
  private cutAtCalls: number[] = [];
  private readonly armed = new ArmedCuts();
  /** Called before every port call, with its label and arguments (the invariant checker hooks here). */
  beforeCall: ((label: string, args: readonly unknown[]) => void) | undefined;
  /** Called after every port call that ran, also when it failed (`result` is then undefined). */
  afterCall: ((label: string, args: readonly unknown[], result: unknown, ok: boolean) => void) | undefined;
  cuts = 0;
  /** Cuts that fired by step number (cutAtCall). */
  numberedCuts = 0;
  /** Whether the device resumes its target after the last cut (see ArmedCut.resume). */
  lastCutResumes = true;

  /** Cut power just before the k-th port call (1-based, counted from now on). */
  cutAtCall(k: number): void {
    this.cutAtCalls.push(this.calls + k);
  }

  arm(cut: ArmedCut): void {
    this.armed.arm(cut);
  }

  /** Drops the named cuts that have not fired; cuts by step number stay. */
  disarmNamed(): void {
    this.armed.clear();
  }

  disarmAll(): void {
    this.cutAtCalls = [];
    this.armed.clear();
  }

  get pending(): boolean {
    return this.cutAtCalls.length > 0 || this.armed.size > 0;
  }

  /**
   * Runs `work` outside the device's story (a scenario step editing the DB by hand): its calls are not
   * steps, so no cut lands in them and the numbering of the device's own calls does not move.
   */
  async offstage<T>(work: () => Promise<T>): Promise<T> {
    this.suspended++;
    try {
      return await work();
    } finally {
      this.suspended--;
    }
  }

  private suspended = 0;

  /** Power is back: the device boots. */
  restore(): void {
    this.off = false;
    this.epoch++;
  }

  /** Something durable may have changed since the last step (see `distinctSteps`). */
  changed(): void {
    this.epoch++;
  }

  private countStep(): void {
    this.calls++;
    if (this.epoch !== this.epochOfLastStep) {
      this.distinctSteps.push(this.calls);
      this.epochOfLastStep = this.epoch;
    }
  }

  tick(label: string): void {
    if (this.suspended > 0) return;
    if (this.off) throw this.stillOff(label);
    this.countStep();
    // A file-system call may write: whatever comes next is a new state.
    if (label.startsWith('fs.')) this.epoch++;
    const reached = this.lastReached;
    this.lastReached = undefined;
    if (this.numberedCutDue()) {
      if (reached) this.cutsAt.set(reached, (this.cutsAt.get(reached) ?? 0) + 1);
      throw this.cut(`before port call #${this.calls} ${label}`);
    }
  }

  /** Whether a cut by step number is due at the current step (it is then used up). */
  private numberedCutDue(): boolean {
    if (this.cutAtCalls.length === 0) return false;
    const index = this.cutAtCalls.indexOf(this.calls);
    if (index < 0) return false;
    this.cutAtCalls.splice(index, 1);
    this.lastCutResumes = true;
    this.numberedCuts++;
    return true;
  }

  reach(point: CrashPoint, detail: string): void {
    if (this.off) throw this.stillOff(point);
    this.hits.set(point, (this.hits.get(point) ?? 0) + 1);
    // Interior points follow a layer written; the others follow the effect they name.
    this.epoch++;
    if (!INTERIOR_POINTS.has(point)) this.lastReached = point;
    else if (this.suspended === 0) {
      this.countStep();
      this.lastReached = undefined;
      if (this.numberedCutDue()) {
        this.cutsAt.set(point, (this.cutsAt.get(point) ?? 0) + 1);
        throw this.cut(`at step #${this.calls} ${point} (${detail})`);
      }
    }
    const fired = this.armed.fire(point, detail);
    if (fired) {
      this.lastCutResumes = fired.resume ?? true;
      this.cutsAt.set(point, (this.cutsAt.get(point) ?? 0) + 1);
      throw this.cut(`at ${point} (${detail})`);
    }
  }

  private cut(where: string): KeeperError {
    this.cuts++;
    this.off = true;
    this.offReason = where;
    return powerCutError(`power cut ${where}`, where);
  }

  private stillOff(label: string): KeeperError {
    return powerCutError(`power is still out (cut ${this.offReason}) at ${label}`, this.offReason);
  }
}

/** The error a power cut throws: cheap (no stack), with where it happened in `details.where`. */
export function powerCutError(message: string, where: string): KeeperError {
  // Cuts are frequent and their stack says nothing (the trace does): skip capturing one.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new KeeperError('POWER_CUT', message, { details: { where } });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Wraps a port so that every method call is a step the power controller can cut before, and the
 * invariant checker can look at. Properties pass through untouched.
 */
/** Port methods that only read: they change nothing durable (see PowerController.distinctSteps). */
const READS = new Set([
  'listRows',
  'readTarget',
  'listImages',
  'inspectImage',
  'listContainers',
  'diskUsage',
]);

export function instrument<T extends object>(port: T, name: string, power: PowerController): T {
  // One wrapper per method, made on first use: the hot path allocates no closures.
  const wrappers = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  return new Proxy(port, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const cached = wrappers.get(prop);
      if (cached) return cached;
      const fn = value as (...args: unknown[]) => unknown;
      const label = `${name}.${prop}`;
      const mutates = !READS.has(prop);
      const wrapper = async (...args: unknown[]): Promise<unknown> => {
        power.tick(label);
        power.beforeCall?.(label, args);
        let result: unknown;
        let ok = false;
        try {
          result = await fn.apply(target, args);
          ok = true;
          return result;
        } finally {
          if (mutates) power.changed();
          power.afterCall?.(label, args, result, ok);
        }
      };
      wrappers.set(prop, wrapper);
      return wrapper;
    },
  });
}
