/**
 * In-process power cuts for the engine scenario runner, for the cuts a real `apply` process killing
 * itself cannot express (a cut inside an intermediate apply, a restart, an idle tick, two different
 * cuts at once): the CrashPoints port of the runner's ImageKeeper. An armed cut fires like the
 * simulator's (PowerController.reach in sim/device/power-controller.ts): at the `occurrence`-th reach
 * of its point whose detail contains its match, by throwing a POWER_CUT KeeperError, which the core
 * never catches. Once out, power stays out: every later crash point and every port call made through
 * `powered` throws again until the runner boots the device (`restore`), so a core that caught the cut
 * and carried on cannot write anything, and the runner sees that it did.
 *
 * The runner then abandons that keeper and its SqlJsStateDb (nothing is flushed: every commit was
 * durable before its call returned) and boots a new one over the DB file and the engine as they are.
 */
import type { KeeperError } from '../../../core/errors.js';
import type { CrashPoint, CrashPoints } from '../../../core/ports/crash-points.js';
import type { ArmedCut } from '../../../sim/device/armed-cuts.js';
import { ArmedCuts } from '../../../sim/device/armed-cuts.js';
import { powerCutError } from '../../../sim/device/power-controller.js';

export interface InProcessCut extends ArmedCut {
  /** The cut in the scenario's own terms, for the report: `<point>:<occurrence>[:<match>]`. */
  readonly label: string;
  /** Why it runs in-process rather than as a SIGKILLed apply process. */
  readonly why: string;
}

export class InProcessPower implements CrashPoints {
  /** Power is out: set by a cut, cleared by `restore` when the device boots. */
  off = false;
  /** Whether the device resumes its target after the last cut (see InProcessCut.resume). */
  lastCutResumes = true;
  /** Cuts that fired, in order. */
  readonly fired: InProcessCut[] = [];
  private readonly armed = new ArmedCuts<InProcessCut>();
  private offReason = '';

  arm(cut: InProcessCut): void {
    this.armed.arm(cut);
  }

  get pending(): boolean {
    return this.armed.size > 0;
  }

  /** Drops the cuts that have not fired and returns them. */
  disarm(): InProcessCut[] {
    return this.armed.clear();
  }

  /** Power is back: the device boots. */
  restore(): void {
    this.off = false;
  }

  /** Throws while power is out (before every port call of the device, see `powered`). */
  check(label: string): void {
    if (this.off) throw this.stillOff(label);
  }

  reach(point: CrashPoint, detail: string): void {
    if (this.off) throw this.stillOff(point);
    const fired = this.armed.fire(point, detail);
    if (!fired) return;
    this.lastCutResumes = fired.resume ?? true;
    this.fired.push(fired);
    this.off = true;
    this.offReason = `at ${point} (${detail})`;
    throw powerCutError(`power cut ${this.offReason}`, this.offReason);
  }

  private stillOff(label: string): KeeperError {
    return powerCutError(`power is still out (cut ${this.offReason}) at ${label}`, this.offReason);
  }
}

/**
 * The port with every method call refused (a rejected promise: port methods are async) while power is
 * out; `overrides` replace methods (they are refused too). Properties pass through.
 */
export function powered<T extends object>(port: T, power: InProcessPower, overrides: Partial<T> = {}): T {
  const wrappers = new Map<string, (...args: unknown[]) => unknown>();
  return new Proxy(port, {
    get(target, prop) {
      const own = typeof prop === 'string' ? (overrides as Record<string, unknown>)[prop] : undefined;
      const value: unknown = own ?? Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      let wrapper = wrappers.get(prop);
      if (!wrapper) {
        const fn = value as (...args: unknown[]) => unknown;
        const self = own === undefined ? target : undefined;
        wrapper = (...args: unknown[]) => {
          try {
            power.check(prop);
          } catch (error) {
            return Promise.reject(error as Error);
          }
          return fn.apply(self, args);
        };
        wrappers.set(prop, wrapper);
      }
      return wrapper;
    },
  });
}
