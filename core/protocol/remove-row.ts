import { assert, isKeeperError } from '../errors.js';
import type { EngineImage } from '../model/engine-image.js';
import { allReferences } from '../model/engine-image.js';
import type { ImageRow } from '../model/image-row.js';
import { digestOf, repositoryOf } from '../reference/image-reference.js';
import type { KeeperContext } from './keeper-context.js';

/**
 * REMOVAL WITH REFERENCE COUNTING by sha256 image ID.
 *  - Another row still references the image, or a container uses it: remove only this row's own
 *    references, and only those whose removal cannot delete the image (untagKeepingImage), then
 *    delete the row.
 *  - This is the last row and no container uses the image: delete the engine image, THEN the row. A
 *    cut in between leaves a row without an image, which startup cleanup deletes; the other order
 *    would leak a tagged image nobody owns (balena hazard 10.1). An image the engine keeps for its
 *    child images (IMAGE_IN_USE, reason 'child-images') is treated like one an operator tagged.
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
  const mutant = ctx.config.mutant;
  const own = ownReferences(image, row, mutant === 'untag-others-reference' ? [] : others);

  if ((others.length > 0 && mutant !== 'delete-by-name') || usedByContainer) {
    await untagKeepingImage(ctx, image, own);
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
    return;
  }

  if (mutant === 'row-before-engine-delete') {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
  }
  // Only a tag in another repository marks an operator's claim on the image. Digest references, and
  // tags of the row's own repository, are what pulls leave, also for rows removed earlier (a reference
  // that could not be untagged safely, or a cut, leaves one behind): they do not count.
  const repository = repositoryOf(row.name);
  const foreign = image.repoTags.filter((ref) => !own.includes(ref) && repositoryOf(ref) !== repository);
  if (foreign.length === 0 || mutant === 'delete-by-name') {
    assert(!usedByContainer, 'an image is deleted only when no container uses it', { dockerImageId });
    try {
      await ctx.engine.removeImage(dockerImageId);
    } catch (error) {
      // Someone built images FROM it (Docker refuses even a forced delete): it is theirs now, like an
      // operator's tag; take back only our own references. Retrying would never converge.
      if (!isKeeperError(error, 'IMAGE_IN_USE') || error.details['reason'] !== 'child-images') throw error;
      await untagKeepingImage(ctx, image, own);
    }
  } else {
    // An operator's tag: the image is theirs now; take back only our own references.
    await untagKeepingImage(ctx, image, own);
  }
  ctx.crashPoints.reach('between-engine-delete-and-row-delete', row.name);
  if (mutant !== 'row-before-engine-delete') {
    await ctx.db.deleteRow(row.id);
    ctx.crashPoints.reach('after-row-delete', row.name);
  }
}

/**
 * Removes references while the image must stay. Docker deletes an image with its last reference, and
 * counts one tag plus the digest references of its repository as a single reference (moby
 * isSingleReference; removing a repository's last tag takes its digests along, and a used image's
 * single reference is refused with 409). So a reference is removed only while the image keeps one in
 * another repository; anything else stays, harmlessly, until the image itself goes.
 */
async function untagKeepingImage(
  ctx: KeeperContext,
  image: EngineImage,
  own: readonly string[],
): Promise<void> {
  let tags = [...image.repoTags];
  let digests = [...image.repoDigests];
  for (const ref of own) {
    const repository = repositoryOf(ref);
    const elsewhere = [...tags, ...digests].some((r) => repositoryOf(r) !== repository);
    if (!elsewhere && ctx.config.mutant !== 'untag-last-reference') continue;
    await ctx.engine.removeReference(ref);
    ctx.crashPoints.reach('between-untag-and-delete', ref);
    tags = tags.filter((t) => t !== ref);
    digests = digests.filter((d) => d !== ref);
    if (digestOf(ref) === undefined && !tags.some((t) => repositoryOf(t) === repository)) {
      digests = digests.filter((d) => repositoryOf(d) !== repository);
    }
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
