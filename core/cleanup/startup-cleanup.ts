import type { KeeperContext } from '../protocol/keeper-context.js';
import { DeviceView } from '../planner/device-view.js';
import { short } from '../model/plan-step.js';

export interface StartupCleanupResult {
  readonly repaired: readonly string[];
  readonly deleted: readonly string[];
}

/**
 * Runs once at start, before any apply. Repairs what a power cut inside the pull protocol left:
 *  - a row with a null image ID whose image is present by digest (cut between steps 2 and 3) gets its
 *    ID: repaired, never downloaded again;
 *  - a row whose image is not on the engine (cut after step 1, or between engine delete and row
 *    delete) is deleted;
 *  - rows of system apps (the supervisor's own image) are deleted without touching the engine.
 * Afterwards every row with an image ID points to an image that exists (invariant S2, second half).
 */
export async function startupCleanup(ctx: KeeperContext): Promise<StartupCleanupResult> {
  const rows = await ctx.db.listRows();
  const images = await ctx.engine.listImages();
  const view = new DeviceView(rows, images, []);
  const repaired: string[] = [];
  const deleted: string[] = [];
  for (const row of rows) {
    if (ctx.config.systemApps.includes(row.appId)) {
      await ctx.db.deleteRow(row.id);
      deleted.push(`${row.name} (system app ${row.appId})`);
    } else if (row.dockerImageId === null) {
      const present = ctx.config.mutant === 'skip-repair' ? undefined : view.engineImageFor(row.name);
      if (present) {
        await ctx.db.setDockerImageId(row.id, present.id);
        repaired.push(`${row.name} -> ${short(present.id)}`);
      } else {
        await ctx.db.deleteRow(row.id);
        deleted.push(`${row.name} (no image)`);
      }
    } else if (!view.imagesById.has(row.dockerImageId)) {
      await ctx.db.deleteRow(row.id);
      deleted.push(`${row.name} (image ${short(row.dockerImageId)} gone)`);
    } else {
      continue;
    }
    ctx.crashPoints.reach('mid-startup-cleanup', row.name);
  }
  if (ctx.config.mutant === 'startup-prunes-layers') await ctx.engine.pruneUnusedLayers();
  ctx.events.emit({ type: 'startup-cleanup', repaired, deleted });
  return { repaired, deleted };
}
