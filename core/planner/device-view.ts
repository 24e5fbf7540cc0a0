import type { Container } from '../model/container.js';
import type { EngineImage } from '../model/engine-image.js';
import type { ImageRow } from '../model/image-row.js';
import { rowKey } from '../model/image-row.js';
import type { TargetImage } from '../model/target.js';
import { digestOf } from '../reference/image-reference.js';

/**
 * Indexes over one consistent read of the device (rows, engine images, containers), so planning stays
 * linear in their number. Built once per pass; never mutated. The indexes every pass needs are built
 * at once; the others (tags, apps, delta sources, locks) on first use.
 */
export class DeviceView {
  readonly imagesById = new Map<string, EngineImage>();
  /** Manifest digest (`sha256:...`) to the engine image carrying it, whatever the repository. */
  readonly imageByDigest = new Map<string, EngineImage>();
  readonly rowsByKey = new Map<string, ImageRow[]>();
  /** Rows sharing their key with another row (duplicates a bug or a cut left). */
  readonly duplicated = new Set<number>();
  readonly rowsByDockerId = new Map<string, ImageRow[]>();
  readonly containersByImage = new Map<string, Container[]>();
  /** Managed containers by `${appId}/${serviceId}`. */
  readonly containersByService = new Map<string, Container[]>();
  private tagIndex: Map<string, EngineImage> | undefined;
  private appIndex: Map<number, Container[]> | undefined;
  private lockIndex: Set<number> | undefined;
  private available: { byService: Map<string, ImageRow[]>; byApp: Map<number, ImageRow[]> } | undefined;

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
    }
    for (const row of rows) {
      const key = rowKey(row);
      const same = this.rowsByKey.get(key);
      if (same) {
        same.push(row);
        for (const r of same) this.duplicated.add(r.id);
      } else this.rowsByKey.set(key, [row]);
      if (row.dockerImageId !== null) push(this.rowsByDockerId, row.dockerImageId, row);
    }
    for (const container of containers) {
      push(this.containersByImage, container.imageId, container);
      const service = container.service;
      if (service) push(this.containersByService, `${service.appId}/${service.serviceId}`, container);
    }
  }

  get imageByTag(): ReadonlyMap<string, EngineImage> {
    if (!this.tagIndex) {
      this.tagIndex = new Map();
      for (const image of this.images) for (const tag of image.repoTags) this.tagIndex.set(tag, image);
    }
    return this.tagIndex;
  }

  /** Managed containers by app. */
  get containersByApp(): ReadonlyMap<number, readonly Container[]> {
    if (!this.appIndex) {
      this.appIndex = new Map();
      for (const container of this.containers)
        if (container.service) push(this.appIndex, container.service.appId, container);
    }
    return this.appIndex;
  }

  /** Apps with a locked container: nothing of theirs is switched. */
  get lockedApps(): ReadonlySet<number> {
    if (!this.lockIndex) {
      this.lockIndex = new Set();
      for (const container of this.containers)
        if (container.service?.locked === true) this.lockIndex.add(container.service.appId);
    }
    return this.lockIndex;
  }

  /** Available rows by `${appId}/${serviceId}`, for delta sources. */
  get availableByService(): ReadonlyMap<string, readonly ImageRow[]> {
    return this.availableIndex().byService;
  }

  /** Available rows by app. */
  get availableByApp(): ReadonlyMap<number, readonly ImageRow[]> {
    return this.availableIndex().byApp;
  }

  private availableIndex(): { byService: Map<string, ImageRow[]>; byApp: Map<number, ImageRow[]> } {
    if (!this.available) {
      const byService = new Map<string, ImageRow[]>();
      const byApp = new Map<number, ImageRow[]>();
      for (const row of this.rows) {
        if (!this.isAvailable(row)) continue;
        push(byService, `${row.appId}/${row.serviceId}`, row);
        push(byApp, row.appId, row);
      }
      this.available = { byService, byApp };
    }
    return this.available;
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
    let best: ImageRow | undefined;
    for (const r of this.rowsByKey.get(key) ?? [])
      if (this.isAvailable(r) && (best === undefined || r.id > best.id)) best = r;
    return best;
  }

  /** A row for this key whose image ID is no longer on the engine. */
  staleRowFor(image: TargetImage, key = rowKey(image)): ImageRow | undefined {
    let best: ImageRow | undefined;
    for (const r of this.rowsByKey.get(key) ?? []) {
      if (r.dockerImageId !== null && !this.isAvailable(r) && (best === undefined || r.id > best.id))
        best = r;
    }
    return best;
  }

  pendingRowFor(image: TargetImage, key = rowKey(image)): ImageRow | undefined {
    let best: ImageRow | undefined;
    for (const r of this.rowsByKey.get(key) ?? [])
      if (r.dockerImageId === null && (best === undefined || r.id > best.id)) best = r;
    return best;
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
