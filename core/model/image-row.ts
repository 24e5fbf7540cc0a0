import type { TargetImage } from './target.js';

/**
 * A row of the image table. One row per (name, appId, serviceId, commit): the same engine image can be
 * referenced by many rows (services sharing an image, a digest kept across releases), so the engine image
 * is deleted only when no row references its sha256 ID any more.
 */
export interface ImageRow extends TargetImage {
  readonly id: number;
  /** The engine's `sha256:` image ID; null between step 1 and step 3 of the pull protocol. */
  readonly dockerImageId: string | null;
}

export type NewImageRow = Omit<ImageRow, 'id'>;

/** The fields that identify what a row stands for; everything else is metadata of that identity. */
export type RowKey = Pick<ImageRow, 'name' | 'appId' | 'serviceId' | 'commit'>;

/**
 * Keys of frozen rows and targets, which the planner asks for on every pass: the same string each time
 * also means a map hashes it once. Only frozen objects are remembered (a mutable one could change).
 */
const frozenKeys = new WeakMap<RowKey, string>();

export function rowKey(row: RowKey): string {
  const known = frozenKeys.get(row);
  if (known !== undefined) return known;
  const key = `${row.appId}/${row.serviceId}/${row.commit}/${row.name}`;
  if (Object.isFrozen(row)) frozenKeys.set(row, key);
  return key;
}
