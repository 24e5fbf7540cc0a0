import { assert } from '../errors.js';
import type { EngineImage } from '../model/engine-image.js';
import { allReferences } from '../model/engine-image.js';
import type { ImageRow } from '../model/image-row.js';
import { digestOf, repositoryOf } from '../reference/image-reference.js';
import type { KeeperContext } from './keeper-context.js';

/**
 * REMOVAL WITH REFERENCE COUNTING by sha256 image ID.
 *  - Another row still references the image, or a container uses it: remove only this row's own
 *    references, never the image's last one (Docker deletes an image with its last reference), then
 *    delete the row.
 *  - This is the last row and no container uses the image: delete the engine image, THEN the row. A
 *    cut in between leaves a row without an image, which startup cleanup deletes; the other order
 *    would leak a tagged image nobody owns (balena hazard 10.1).
 * Invariant S2: the engine image is deleted only when no other row references its ID.
 * The decision is re-checked here against fresh reads, not trusted from the plan.
 */
export async function removeRow(ctx: KeeperContext, row: ImageRow): Promise<void> {
  const dockerImageId = row.dockerImageId;
  if (dockerImageId === null) {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
    return;
  }
  const image = await ctx.engine.inspectImage(dockerImageId);
  if (!image) {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
    return;
  }
  const rows = await ctx.db.listRows();
  const containers = await ctx.engine.listContainers();
  const others = rows.filter((r) => r.id !== row.id && r.dockerImageId === dockerImageId);
  const usedByContainer = containers.some((c) => c.imageId === dockerImageId);
  const own = ownReferences(image, row, others);
  const mutant = ctx.config.mutant;

  if ((others.length > 0 && mutant !== 'delete-by-name') || usedByContainer) {
    let remaining = allReferences(image).length;
    for (const ref of own) {
      if (remaining <= 1 && mutant !== 'untag-last-reference') break;
      await ctx.engine.removeReference(ref);
      remaining--;
      ctx.crashPoints.reach('between-untag-and-delete', ref);
    }
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
    return;
  }

  if (mutant === 'row-before-engine-delete') {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
  }
  // Only a tag nobody of ours owns marks an operator's claim on the image. Digest references are what
  // pulls leave, also those of rows removed earlier (a cut can leave one behind): they do not count.
  const foreign = image.repoTags.filter((ref) => !own.includes(ref));
  if (foreign.length === 0 || mutant === 'delete-by-name') {
    assert(
      mutant !== undefined || !containers.some((c) => c.imageId === dockerImageId),
      'an image is deleted only when no container uses it',
      { dockerImageId },
    );
    await ctx.engine.removeImage(dockerImageId);
  } else {
    // An operator's tag: the image is theirs now; take back only our own references.
    for (const ref of own) {
      await ctx.engine.removeReference(ref);
      ctx.crashPoints.reach('between-untag-and-delete', ref);
    }
  }
  ctx.crashPoints.reach('between-engine-delete-and-row-delete', row.name);
  if (mutant !== 'row-before-engine-delete') {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
  }
}

/**
 * The references a row owns on its image: its own name, and any digest reference with the same digest
 * (identity by digest); for a tag name also the digest references of its repository, which the pull
 * created. Names of other rows on the same image are theirs.
 */
export function ownReferences(image: EngineImage, row: ImageRow, others: readonly ImageRow[]): string[] {
  const otherNames = new Set(others.map((r) => r.name));
  const digest = digestOf(row.name);
  const repository = repositoryOf(row.name);
  return allReferences(image).filter((ref) => {
    if (otherNames.has(ref)) return false;
    if (ref === row.name) return true;
    const refDigest = digestOf(ref);
    if (refDigest === undefined) return false;
    return digest !== undefined ? refDigest === digest : repositoryOf(ref) === repository;
  });
}
