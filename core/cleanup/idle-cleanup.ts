import { short } from '../model/plan-step.js';
import type { KeeperContext } from '../protocol/keeper-context.js';

/**
 * Removes dangling engine images (no tags, no digests, no row, no container) and the layers interrupted
 * pulls left behind. The planner only emits it on a pass with no other image action and no pull in
 * flight: a half-built delta image is dangling until it completes.
 */
export async function idleCleanup(ctx: KeeperContext, imageIds: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const id of imageIds) {
    const outcome = await ctx.engine.removeImage(id);
    if (outcome === 'deleted') removed.push(short(id));
    ctx.crashPoints.reach('mid-idle-cleanup', id);
  }
  await ctx.engine.pruneUnusedLayers();
  ctx.events.emit({ type: 'idle-cleanup', removed });
  return removed;
}
