import type { ImageRow, NewImageRow } from '../model/image-row.js';

/**
 * The image table. Every method is one durable commit: when it resolves, the change survives a power
 * cut; when it rejects or power is cut before it resolves, the table is as it was before or after it,
 * never half-written.
 */
export interface ImageDb {
  listRows(): Promise<ImageRow[]>;
  /** Step 1 of the pull protocol (with dockerImageId null) and the save of an image present by digest. */
  insertRow(row: NewImageRow): Promise<ImageRow>;
  /** Step 3 of the pull protocol, and the startup repair of a row whose image is present. */
  setDockerImageId(rowId: number, dockerImageId: string): Promise<void>;
  /** Deleting a row that is already gone is not an error (recovery re-runs removals). */
  deleteRow(rowId: number): Promise<void>;
}
