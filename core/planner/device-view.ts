import type { Container } from '../model/container.js';
import type { EngineImage } from '../model/engine-image.js';
import type { ImageRow } from '../model/image-row.js';
import { rowKey } from '../model/image-row.js';
import type { TargetImage } from '../model/target.js';
import { digestOf } from '../reference/image-reference.js';

/**
 * Indexes over one consistent read of the device (rows, engine images, containers), so planning stays
 * linear in their number. Built once per pass; never mutated.
 */
export class DeviceView {
  readonly imagesById = new Map<string, EngineImage>();
  /** Manifest digest (`sha256:...`) to the engine image carrying it, whatever the repository. */
  readonly imageByDigest = new Map<string, EngineImage>();
  readonly imageByTag = new Map<string, EngineImage>();
  readonly rowsByKey = new Map<string, ImageRow[]>();
  readonly rowsByDockerId = new Map<string, ImageRow[]>();
  readonly containersByImage = new Map<string, Container[]>();
  /** Managed containers by `${appId}/${serviceId}`. */
  readonly containersByService = new Map<string, Container[]>();
  readonly containersByApp = new Map<number, Container[]>();
  readonly lockedApps = new Set<number>();
  /** Available rows by `${appId}/${serviceId}` and by app, for delta sources. */
  readonly availableByService = new Map<string, ImageRow[]>();
  readonly availableByApp = new Map<number, ImageRow[]>();

  constructor(
    readonly rows: readonly ImageRow[],
    readonly images: readonly EngineImage[],
    readonly containers: readonly Container[],
  ) {
    for (const image of images) {
      this.imagesById.set(image.id, image);
      for (const ref of image.repoDigests) {
        const digest = digestOf(ref);
        if (digest !== undefined) this.imageByDigest.set(digest, image);
      }
      for (const tag of image.repoTags) this.imageByTag.set(tag, image);
    }
    for (const row of rows) {
      push(this.rowsByKey, rowKey(row), row);
      if (row.dockerImageId !== null) push(this.rowsByDockerId, row.dockerImageId, row);
    }
    for (const container of containers) {
      push(this.containersByImage, container.imageId, container);
      const service = container.service;
      if (!service) continue;
      push(this.containersByService, `${service.appId}/${service.serviceId}`, container);
      push(this.containersByApp, service.appId, container);
      if (service.locked === true) this.lockedApps.add(service.appId);
    }
    for (const row of rows) {
      if (!this.isAvailable(row)) continue;
      push(this.availableByService, `${row.appId}/${row.serviceId}`, row);
      push(this.availableByApp, row.appId, row);
    }
  }

  managedContainersOf(appId: number, serviceId: number): readonly Container[] {
    return this.containersByService.get(`${appId}/${serviceId}`) ?? [];
  }

  /** A row is available when its image ID is on the engine. */
  isAvailable(row: ImageRow): boolean {
    return row.dockerImageId !== null && this.imagesById.has(row.dockerImageId);
  }

  /** The available row standing for this target image, if any (the newest when duplicates exist). */
  availableRowFor(image: TargetImage, key = rowKey(image)): ImageRow | undefined {
    return newest((this.rowsByKey.get(key) ?? []).filter((r) => this.isAvailable(r)));
  }

  /** A row for this key whose image ID is no longer on the engine. */
  staleRowFor(image: TargetImage, key = rowKey(image)): ImageRow | undefined {
    return newest((this.rowsByKey.get(key) ?? []).filter((r) => r.dockerImageId !== null && !this.isAvailable(r)));
  }

  pendingRowFor(image: TargetImage, key = rowKey(image)): ImageRow | undefined {
    return newest((this.rowsByKey.get(key) ?? []).filter((r) => r.dockerImageId === null));
  }

  /**
   * Identity by digest: the engine image whose manifest digest equals the reference's, in any
   * repository. A reference without a digest matches only the exact tag.
   */
  engineImageFor(name: string, ignoreDigest = false): EngineImage | undefined {
    const digest = digestOf(name);
    if (digest !== undefined) return ignoreDigest ? undefined : this.imageByDigest.get(digest);
    return this.imageByTag.get(name);
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export function newest<T extends { id: number }>(rows: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const row of rows) if (best === undefined || row.id > best.id) best = row;
  return best;
}
