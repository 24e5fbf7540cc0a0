export type UpdateStrategy = 'download-then-kill' | 'delete-then-download';

/** One image the target needs, with the metadata its row will carry. */
export interface TargetImage {
  /** Normalised reference; with a digest when the target gave one (`reg/repo@sha256:...`). */
  readonly name: string;
  readonly appId: number;
  readonly serviceId: number;
  readonly serviceName: string;
  readonly imageId: number;
  readonly releaseId: number;
  readonly commit: string;
}

export interface TargetService extends TargetImage {
  readonly strategy: UpdateStrategy;
}

/**
 * The device's target. `services` run on this device; `dependent` images are downloaded for devices
 * attached to this one and never run here.
 */
export interface Target {
  readonly services: readonly TargetService[];
  readonly dependent: readonly TargetImage[];
}

/** Images the current dependent state (what attached devices run now) still lists. */
export type DependentState = readonly TargetImage[];

export const EMPTY_TARGET: Target = { services: [], dependent: [] };
