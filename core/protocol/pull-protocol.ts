import { assert, isKeeperError, isPowerCut } from '../errors.js';
import type { EngineImage } from '../model/engine-image.js';
import type { DeltaSource } from '../model/plan-step.js';
import type { TargetImage } from '../model/target.js';
import type { ProgressListener } from '../ports/engine.js';
import { digestOf } from '../reference/image-reference.js';
import type { KeeperContext } from './keeper-context.js';

/**
 * THE PULL PROTOCOL. Three durable steps, in this order, so a power cut between any two leaves a
 * state that startup cleanup repairs without losing or re-downloading a complete image:
 *   1. store the row (dockerImageId null): the intent, so the pull is never anonymous;
 *   2. pull the image, or build it from a delta (a cut here leaves layers, or a dangling half-built
 *      delta image, that the next pull reuses or idle cleanup removes);
 *   3. write the engine's sha256 image ID into the row (a cut before this leaves an image present by
 *      digest, which startup cleanup repairs into the row: no second download).
 * Invariant S3: step 3 only ever writes an ID the engine holds at that moment.
 */
export async function fetchImage(
  ctx: KeeperContext,
  image: TargetImage,
  deltaSource: DeltaSource | undefined,
  pendingRowId: number | undefined,
): Promise<string> {
  const pullNow = async (): Promise<EngineImage> => {
    const pulled =
      deltaSource && ctx.config.deltas && ctx.engine.supportsDeltas
        ? await pullDeltaOrFallBack(ctx, image, deltaSource)
        : await pullWithRetry(ctx, image.name);
    ctx.crashPoints.reach('after-image-complete', image.name);
    return pulled;
  };
  const early = ctx.config.mutant === 'pull-before-row' ? await pullNow() : undefined;

  // Step 1: store the row. A pending row for the same image from an interrupted attempt is reused.
  let rowId = pendingRowId;
  if (rowId === undefined || ctx.config.mutant === 'duplicate-rows') {
    rowId = (await ctx.db.insertRow({ ...image, dockerImageId: null })).id;
  }
  ctx.crashPoints.reach('after-row-stored', image.name);

  // Step 2: pull or delta.
  const pulled = early ?? (await pullNow());
  const wanted = digestOf(image.name);
  assert(
    wanted === undefined || pulled.repoDigests.some((ref) => digestOf(ref) === wanted),
    'the pulled image carries the digest that was asked for',
    { name: image.name, got: pulled.repoDigests },
  );

  // Step 3: write the engine's image ID into the row.
  await ctx.db.setDockerImageId(rowId, pulled.id);
  ctx.crashPoints.reach('after-id-written', image.name);
  return pulled.id;
}

/** Saves a row for an image already present by digest: one durable commit, nothing downloaded. */
export async function saveImage(
  ctx: KeeperContext,
  image: TargetImage,
  dockerImageId: string,
  pendingRowId: number | undefined,
): Promise<void> {
  if (pendingRowId !== undefined) await ctx.db.setDockerImageId(pendingRowId, dockerImageId);
  else await ctx.db.insertRow({ ...image, dockerImageId });
  ctx.crashPoints.reach('after-save', image.name);
}

function progressTo(ctx: KeeperContext, point: 'mid-pull' | 'mid-delta'): ProgressListener {
  return (progress) => {
    ctx.events.emit({ type: 'progress', ...progress });
    ctx.crashPoints.reach(point, `${progress.ref} after ${progress.layersDone} layer(s)`);
  };
}

const TRANSIENT = new Set(['REGISTRY_ERROR', 'ENGINE_UNAVAILABLE', 'PULL_INCOMPLETE']);

function isTransient(error: unknown): boolean {
  return isKeeperError(error) && TRANSIENT.has(error.code) && error.details['transient'] !== false;
}

async function pullWithRetry(ctx: KeeperContext, ref: string): Promise<EngineImage> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.engine.pull(ref, progressTo(ctx, 'mid-pull'));
    } catch (error) {
      if (isPowerCut(error) || !isTransient(error) || attempt > ctx.config.pullRetries) throw error;
      const delayMs = ctx.config.retryBaseMs * 2 ** (attempt - 1);
      ctx.events.emit({
        type: 'retry',
        what: `pull ${ref}`,
        attempt,
        delayMs,
        error: (error as Error).message,
      });
      await ctx.clock.sleep(delayMs);
    }
  }
}

/**
 * A delta whose source vanished falls back to a regular pull at once; a delta that fails to apply is
 * retried `deltaRetries` times first (balena #1631, PR #2396). Layer sharing still saves bandwidth.
 */
async function pullDeltaOrFallBack(
  ctx: KeeperContext,
  image: TargetImage,
  source: DeltaSource,
): Promise<EngineImage> {
  for (let attempt = 1; attempt <= ctx.config.deltaRetries; attempt++) {
    try {
      return await ctx.engine.pullDelta(image.name, source.dockerImageId, progressTo(ctx, 'mid-delta'));
    } catch (error) {
      if (isPowerCut(error)) throw error;
      if (
        !isKeeperError(error) ||
        !['DELTA_FAILED', 'DELTA_SOURCE_MISSING', 'DELTAS_UNSUPPORTED'].includes(error.code)
      ) {
        throw error;
      }
      ctx.events.emit({
        type: 'retry',
        what: `delta ${image.name}`,
        attempt,
        delayMs: 0,
        error: error.message,
      });
      if (error.code !== 'DELTA_FAILED') break;
    }
  }
  return pullWithRetry(ctx, image.name);
}
