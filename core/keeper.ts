import { idleCleanup } from './cleanup/idle-cleanup.js';
import type { StartupCleanupResult } from './cleanup/startup-cleanup.js';
import { startupCleanup } from './cleanup/startup-cleanup.js';
import type { KeeperConfig } from './config.js';
import { DEFAULT_CONFIG } from './config.js';
import { isKeeperError, isPowerCut, KeeperError } from './errors.js';
import type { PlanStep } from './model/plan-step.js';
import { describeStep } from './model/plan-step.js';
import type { DependentState, Target } from './model/target.js';
import type { Plan } from './planner/plan.js';
import { cleanupCandidates, plan } from './planner/plan.js';
import { DeviceView } from './planner/device-view.js';
import type { Clock } from './ports/clock.js';
import type { ContainerControl } from './ports/container-control.js';
import type { CrashPoints } from './ports/crash-points.js';
import { NO_CRASH_POINTS } from './ports/crash-points.js';
import type { Engine } from './ports/engine.js';
import type { EventSink } from './ports/event-sink.js';
import { NO_EVENTS } from './ports/event-sink.js';
import type { ImageDb } from './ports/image-db.js';
import type { TargetStore } from './ports/target-store.js';
import type { KeeperContext } from './protocol/keeper-context.js';
import { fetchImage, saveImage } from './protocol/pull-protocol.js';
import { removeRow } from './protocol/remove-row.js';

export interface KeeperDeps {
  readonly db: ImageDb;
  readonly targets: TargetStore;
  readonly engine: Engine;
  readonly containers: ContainerControl;
  readonly clock: Clock;
  readonly events?: EventSink;
  readonly crashPoints?: CrashPoints;
  /** What attached devices run now (dependent apps); read on every pass. */
  readonly dependent?: () => DependentState;
  readonly config?: Partial<KeeperConfig>;
}

export interface ApplyOptions {
  /** An intermediate target moves containers but removes no image and is not persisted. */
  readonly intermediate?: boolean;
}

export interface ApplyReport {
  readonly passes: number;
  readonly stepsRun: number;
}

/** A step that failed this many passes in a row makes apply give up with its error. */
const MAX_STEP_FAILURES = 3;

/**
 * The state engine's image side: startup cleanup once, then apply passes until the planner's fixed
 * point. One instance per process lifetime; a restart (or a simulated power cut) builds a new one over
 * the durable state, so everything held here is volatile by design.
 */
export class ImageKeeper {
  private readonly ctx: KeeperContext;
  private readonly dependent: () => DependentState;
  private fetchesInFlight = 0;

  constructor(deps: KeeperDeps) {
    this.ctx = {
      db: deps.db,
      targets: deps.targets,
      engine: deps.engine,
      containers: deps.containers,
      clock: deps.clock,
      events: deps.events ?? NO_EVENTS,
      crashPoints: deps.crashPoints ?? NO_CRASH_POINTS,
      config: { ...DEFAULT_CONFIG, ...deps.config },
    };
    this.dependent = deps.dependent ?? (() => []);
  }

  get config(): KeeperConfig {
    return this.ctx.config;
  }

  /** Startup cleanup: run once after every start, before the first apply. */
  async startup(): Promise<StartupCleanupResult> {
    if (this.ctx.config.mutant === 'skip-startup-cleanup') return { repaired: [], deleted: [] };
    return startupCleanup(this.ctx);
  }

  /**
   * Converges to `target` (or, with null, to the persisted target: what a restart does). The target is
   * persisted before anything moves, so after a power cut it is the authority.
   */
  async apply(target: Target | null, options: ApplyOptions = {}): Promise<ApplyReport> {
    const intermediate = options.intermediate ?? false;
    let effective = target;
    if (target && !intermediate) await this.ctx.targets.writeTarget(target);
    if (!target) effective = await this.ctx.targets.readTarget();
    const failures = new Map<string, number>();
    let stepsRun = 0;
    for (let pass = 1; pass <= this.ctx.config.maxPasses; pass++) {
      const { steps } = await this.plan(effective, intermediate);
      if (steps.length === 0) {
        this.ctx.events.emit({ type: 'converged', passes: pass });
        return { passes: pass, stepsRun };
      }
      // Step descriptions cost string building on the hot path: only when someone listens.
      const listening = this.ctx.events !== NO_EVENTS;
      if (listening) this.ctx.events.emit({ type: 'pass', pass, steps: steps.map(describeStep) });
      for (const step of steps) {
        const label = listening ? describeStep(step) : '';
        if (listening) this.ctx.events.emit({ type: 'step', step: label, phase: 'start' });
        try {
          await this.execute(step);
          stepsRun++;
          if (failures.size > 0) failures.delete(describeStep(step));
          if (listening) this.ctx.events.emit({ type: 'step', step: label, phase: 'done' });
        } catch (error) {
          if (isPowerCut(error)) throw error;
          const label = describeStep(step);
          this.ctx.events.emit({
            type: 'step',
            step: label,
            phase: 'failed',
            error: (error as Error).message,
          });
          // Failures of the same step in consecutive passes; a success resets its count.
          const count = (failures.get(label) ?? 0) + 1;
          failures.set(label, count);
          // A refused removal (409) is retried on the next pass; anything else stops apply now.
          if (!isKeeperError(error, 'IMAGE_IN_USE') || count >= MAX_STEP_FAILURES) throw error;
          break;
        }
      }
    }
    throw new KeeperError('NOT_CONVERGED', `no fixed point after ${this.ctx.config.maxPasses} passes`);
  }

  /**
   * An idle pass of the state engine: removes dangling images only when no other image action is
   * pending and no pull is in flight. Safe to call at any time, also while apply runs.
   */
  async idleTick(): Promise<string[]> {
    const target = await this.ctx.targets.readTarget();
    const result = await this.plan(target, false);
    const mutant = this.ctx.config.mutant;
    if (mutant === 'idle-cleanup-during-pull' && this.fetchesInFlight > 0) {
      const rows = await this.ctx.db.listRows();
      const view = new DeviceView(
        rows,
        await this.ctx.engine.listImages(),
        await this.ctx.engine.listContainers(),
      );
      return idleCleanup(this.ctx, cleanupCandidates(view, mutant));
    }
    const [only] = result.steps;
    if (only === undefined) return [];
    if (result.steps.length !== 1 || only.kind !== 'cleanup') {
      this.ctx.events.emit({
        type: 'idle-cleanup',
        removed: [],
        skipped: this.fetchesInFlight > 0 ? 'a pull is in flight' : 'other image actions are pending',
      });
      return [];
    }
    return idleCleanup(this.ctx, only.imageIds);
  }

  /** One read of the device and one planning pass; read-only. */
  async plan(target: Target | null, intermediate: boolean): Promise<Plan> {
    const rows = await this.ctx.db.listRows();
    const images = await this.ctx.engine.listImages();
    const containers = await this.ctx.engine.listContainers();
    const disk = await this.ctx.engine.diskUsage();
    return plan({
      rows,
      images,
      containers,
      target,
      intermediate,
      dependent: this.dependent(),
      deltas: this.ctx.config.deltas && this.ctx.engine.supportsDeltas,
      systemApps: this.ctx.config.systemApps,
      fetchInFlight: this.fetchesInFlight > 0,
      partialBytes: disk.partial,
      mutant: this.ctx.config.mutant,
    });
  }

  private async execute(step: PlanStep): Promise<void> {
    switch (step.kind) {
      case 'save':
        return saveImage(this.ctx, step.image, step.dockerImageId, step.rowId);
      case 'fetch':
        this.fetchesInFlight++;
        try {
          await fetchImage(this.ctx, step.image, step.deltaSource, step.rowId);
        } finally {
          this.fetchesInFlight--;
        }
        return;
      case 'remove':
        return removeRow(this.ctx, step.row);
      case 'kill':
        await this.ctx.containers.kill(step.container);
        this.ctx.crashPoints.reach('after-kill', step.container.id);
        return;
      case 'start':
        await this.ctx.containers.start(step.service, step.dockerImageId);
        this.ctx.crashPoints.reach('after-start', step.service.serviceName);
        return;
      case 'cleanup':
        await idleCleanup(this.ctx, step.imageIds);
        return;
    }
  }
}
