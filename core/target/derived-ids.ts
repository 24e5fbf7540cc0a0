import type { TargetImage } from '../model/target.js';
/**
 * Stable numeric IDs for targets, rows and containers that leave the cloud's integer IDs out. They
 * depend only on names, so a row, a container and a target that name the same service agree without
 * any shared counter (an order-based counter would change when a scenario is reordered).
 */

/** 32-bit FNV-1a: tiny, pure and stable across platforms, which is all a derived ID needs. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** 5 digits (10000-99999) from the service name alone, so every app gives `main` the same ID. */
export function deriveServiceId(serviceName: string): number {
  return 10_000 + (fnv1a(`service:${serviceName}`) % 90_000);
}

/** 6 digits (100000-999999) from the commit: one release per commit, as in the cloud. */
export function deriveReleaseId(commit: string): number {
  return 100_000 + (fnv1a(`release:${commit}`) % 900_000);
}

/** 6 digits from (app, service, commit): the cloud gives each service of each release its own image ID. */
export function deriveImageId(appId: number, serviceId: number, commit: string): number {
  return 100_000 + (fnv1a(`image:${appId}/${serviceId}/${commit}`) % 900_000);
}

/** Two distinct service names whose derived serviceIds collide, if any (the caller asks for an explicit ID). */
export function findServiceIdCollision(
  names: Iterable<string>,
): readonly [string, string, number] | undefined {
  const seen = new Map<number, string>();
  for (const name of names) {
    const id = deriveServiceId(name);
    const other = seen.get(id);
    if (other !== undefined && other !== name) return [other, name, id];
    seen.set(id, name);
  }
  return undefined;
}

/**
 * A target image (or the metadata of a row) from how files write one: app, service, commit, and cloud
 * IDs that are derived from names when left out.
 */
export function targetImageOf(
  name: string,
  spec: {
    readonly app: number;
    readonly service: string;
    readonly commit: string;
    readonly imageId?: number | undefined;
    readonly releaseId?: number | undefined;
  },
  serviceId: number,
): TargetImage {
  return {
    name,
    appId: spec.app,
    serviceId,
    serviceName: spec.service,
    imageId: spec.imageId ?? deriveImageId(spec.app, serviceId, spec.commit),
    releaseId: spec.releaseId ?? deriveReleaseId(spec.commit),
    commit: spec.commit,
  };
}
