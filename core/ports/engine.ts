import type { Container } from '../model/container.js';
import type { EngineImage } from '../model/engine-image.js';

export interface PullProgress {
  readonly ref: string;
  readonly layersDone: number;
  readonly layersTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export type ProgressListener = (progress: PullProgress) => void;

/** What removing one reference did, in Docker's terms. */
export type RemoveReferenceOutcome = 'untagged' | 'deleted' | 'absent';

export interface DiskUsage {
  /** Bytes held by complete images. */
  readonly images: number;
  /** Bytes held by layers of interrupted pulls and half-built delta images. */
  readonly partial: number;
}

/**
 * The container engine as image-keeper sees it. Errors are KeeperErrors: IMAGE_IN_USE (409),
 * PULL_FAILED / PULL_INCOMPLETE / REGISTRY_ERROR, DELTA_SOURCE_MISSING, DISK_FULL, ENGINE_UNAVAILABLE.
 */
export interface Engine {
  listImages(): Promise<EngineImage[]>;
  /** By ID, `repo:tag` or `repo@digest`; null when the engine has no such image. */
  inspectImage(refOrId: string): Promise<EngineImage | null>;
  listContainers(): Promise<Container[]>;
  /** Pulls `ref` and resolves with the complete image; layers already present are not downloaded. */
  pull(ref: string, onProgress: ProgressListener): Promise<EngineImage>;
  /** False for a stock Docker engine: the core then falls back to a regular pull. */
  readonly supportsDeltas: boolean;
  /** Builds `ref` from the source image plus a delta. Fails with DELTA_SOURCE_MISSING if the source is gone. */
  pullDelta(ref: string, sourceImageId: string, onProgress: ProgressListener): Promise<EngineImage>;
  /**
   * Docker's `rmi <ref>`: untags when the image keeps other references, deletes it when this was the
   * last one; refused with IMAGE_IN_USE while a container uses an image it would delete.
   */
  removeReference(ref: string): Promise<RemoveReferenceOutcome>;
  /** Deletes the image with all its references; refused with IMAGE_IN_USE while any container uses it. */
  removeImage(imageId: string): Promise<'deleted' | 'absent'>;
  diskUsage(): Promise<DiskUsage>;
  /** Drops layers left by interrupted pulls that no image uses; a stock Docker engine has none (0). */
  pruneUnusedLayers(): Promise<number>;
}
