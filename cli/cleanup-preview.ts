import { MemoryImageDb } from '../adapters/memory/memory-image-db.js';
import type { StartupCleanupResult } from '../core/cleanup/startup-cleanup.js';
import type { ImageRow } from '../core/model/image-row.js';
import type { Target } from '../core/model/target.js';
import type { Plan } from '../core/planner/plan.js';
import type { KeeperEvent } from '../core/ports/event-sink.js';
import type { Device } from './device.js';
import { DryRunEngine } from './dry-run-engine.js';

/** What both cleanups would do now, computed by the core's own code over a copy of the rows. */
export interface CleanupPreview {
  readonly startup: StartupCleanupResult;
  /** Short IDs of the dangling images idle cleanup would remove. */
  readonly idleRemoved: readonly string[];
  /** Why idle cleanup would not run, when it would not. */
  readonly idleSkipped?: string;
  /** The planner's next pass over the state startup cleanup would leave. */
  readonly plan: Plan;
}

/**
 * Runs startup cleanup, a planning pass and an idle tick on a MemoryImageDb copy of the rows and target
 * and a DryRunEngine over the real engine: nothing on the device changes, and the rules applied are the
 * core's, not a second copy of them.
 */
export async function previewCleanup(
  device: Device,
  rows: readonly ImageRow[],
  target: Target | null,
): Promise<CleanupPreview> {
  const copy = new MemoryImageDb({ rows, nextId: Math.max(1, ...rows.map((r) => r.id + 1)), target });
  const dry = new DryRunEngine(device.engine);
  const events: KeeperEvent[] = [];
  const keeper = device.keeperOver({
    db: copy,
    targets: copy,
    engine: dry,
    containers: dry,
    events: { emit: (e) => events.push(e) },
  });
  const startup = await keeper.startup();
  const plan = await keeper.plan(target, false);
  const idleRemoved = await keeper.idleTick();
  const skipped = events.find(
    (e): e is Extract<KeeperEvent, { type: 'idle-cleanup' }> => e.type === 'idle-cleanup',
  )?.skipped;
  return { startup, idleRemoved, plan, ...(skipped !== undefined ? { idleSkipped: skipped } : {}) };
}
