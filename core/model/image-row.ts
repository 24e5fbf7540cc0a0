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

export function rowKey(row: RowKey): string {
  return `${row.appId}/${row.serviceId}/${row.commit}/${row.name}`;
}
