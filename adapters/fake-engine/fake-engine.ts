import { createHash } from 'node:crypto';
import { assert, KeeperError } from '../../core/errors.js';
import type { Container } from '../../core/model/container.js';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import { allReferences } from '../../core/model/engine-image.js';
import type { TargetService } from '../../core/model/target.js';
import type { ContainerControl } from '../../core/ports/container-control.js';
import type { DiskUsage, Engine, ProgressListener, RemoveReferenceOutcome } from '../../core/ports/engine.js';
import { digestOf, parseReference, repositoryOf } from '../../core/reference/image-reference.js';
import type { FakeRegistry, RegistryManifest } from './fake-registry.js';

interface StoredImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  layers: Layer[];
  size: number;
  /** The frozen copy handed out, until the image changes (see `changed`). */
  view?: EngineImage | undefined;
}

/** Every change to a stored image goes through here, so no stale frozen copy is handed out. */
function changed(image: StoredImage): void {
  image.view = undefined;
}

/** The engine's durable state: what survives a power cut. */
export interface FakeEngineState {
  readonly images: readonly EngineImage[];
  /** Complete layers on disk, used by images or left by interrupted pulls. */
  readonly layers: readonly Layer[];
  readonly containers: readonly Container[];
  /** Bytes of layers that were being written at a cut: the engine lost track of them until it restarts. */
  readonly leakedBytes: number;
}

export type FakeFault =
  | 'registry-500'
  | 'registry-404'
  | 'registry-401'
  | 'timeout'
  | 'disk-full'
  | 'register-layer'
  | 'source-missing';

export interface FakeEngineOptions {
  readonly supportsDeltas?: boolean;
  /** Disk budget in bytes: a layer that does not fit fails the pull with DISK_FULL. */
  readonly diskLimit?: number;
  /** Bytes a delta downloads per byte of missing layer. */
  readonly deltaRatio?: number;
}

export interface FakeEngineCounters {
  bytesDownloaded: number;
  peakDisk: number;
  /** Peak disk since the simulator last reset it (the start of a step it bounds on its own). */
  windowPeakDisk: number;
  pulls: number;
  deltas: number;
  /** Every image ID ever deleted, in order. */
  deleted: string[];
  /** Every image ID a removal was attempted on (reference or image). */
  removalAttempts: string[];
}

/**
 * An in-memory Docker engine that behaves like the real one where image-keeper cares:
 *  - content-addressed layers with sizes; an image appears, with its digest reference, only once all
 *    its layers are in; layers completed before an interruption stay and are reused;
 *  - a delta builds an untagged image from its source while it runs (an interrupted delta leaves a
 *    dangling image) and fails if the source is gone;
 *  - `rmi` semantics: untag versus delete, refused while a container uses the image, deleting the last
 *    reference deletes the image;
 *  - counters for bytes downloaded and disk used.
 * Every state change happens synchronously inside one call, so a power cut (an exception thrown from a
 * progress callback) leaves exactly what a real engine would keep.
 */
export class FakeEngine implements Engine, ContainerControl {
  readonly supportsDeltas: boolean;
  readonly counters: FakeEngineCounters = {
    bytesDownloaded: 0,
    peakDisk: 0,
    windowPeakDisk: 0,
    pulls: 0,
    deltas: 0,
    deleted: [],
    removalAttempts: [],
  };
  private readonly images = new Map<string, StoredImage>();
  private readonly layers = new Map<string, number>();
  private readonly containers = new Map<string, Container>();
  private leakedBytes = 0;
  private readonly faults: {
    op: 'pull' | 'delta' | 'remove';
    fault: FakeFault;
    times: number;
    ref?: string;
  }[] = [];
  private readonly diskLimit: number | undefined;
  private readonly deltaRatio: number;
  private nextContainer = 1;
  private brokenLayerStore = false;
  /** Awaited between two layers of a pull or delta: lets a test run an idle tick while a pull is in flight. */
  betweenLayers: ((ref: string, layersDone: number) => Promise<void>) | undefined;

  constructor(
    private readonly registry: FakeRegistry,
    state?: FakeEngineState,
    options: FakeEngineOptions = {},
  ) {
    this.supportsDeltas = options.supportsDeltas ?? true;
    this.diskLimit = options.diskLimit;
    this.deltaRatio = options.deltaRatio ?? 0.1;
    if (state) this.load(state);
    this.counters.peakDisk = this.diskBytes();
    this.counters.windowPeakDisk = this.counters.peakDisk;
  }

  // ---- durable state -----------------------------------------------------------------------------

  /** A deep copy of what survives a power cut. */
  durableState(): FakeEngineState {
    return {
      images: [...this.images.values()].map(freeze),
      layers: [...this.layers].map(([digest, size]) => ({ digest, size })),
      containers: [...this.containers.values()].map((c) => ({
        ...c,
        ...(c.service ? { service: { ...c.service } } : {}),
      })),
      leakedBytes: this.leakedBytes,
    };
  }

  /** The live images and containers, read-only and uncopied: for checkers that must not slow the run. */
  peek(): { readonly images: readonly EngineImage[]; readonly containers: readonly Container[] } {
    return { images: [...this.images.values()], containers: [...this.containers.values()] };
  }

  /** The complete layers on disk (in images or left by interrupted pulls), uncopied. Do not mutate. */
  peekLayers(): ReadonlyMap<string, number> {
    return this.layers;
  }

  /** Engine start after a power cut: leaked half-written layer data is reclaimed (balena-engine PR #203). */
  restart(): void {
    this.leakedBytes = 0;
    this.nextContainer = this.containers.size + 1;
  }

  private load(state: FakeEngineState): void {
    for (const layer of state.layers) this.layers.set(layer.digest, layer.size);
    for (const image of state.images) {
      this.images.set(image.id, {
        id: image.id,
        repoTags: [...image.repoTags],
        repoDigests: [...image.repoDigests],
        layers: [...image.layers],
        size: sum(image.layers.map((l) => l.size)),
      });
      for (const layer of image.layers) this.layers.set(layer.digest, layer.size);
    }
    for (const c of state.containers) this.containers.set(c.id, c);
    this.leakedBytes = state.leakedBytes;
    this.nextContainer = this.containers.size + 1;
  }

  // ---- test controls -----------------------------------------------------------------------------

  /** The next `times` operations of `op` (optionally only on `ref`) fail with `fault`. */
  injectFault(op: 'pull' | 'delta' | 'remove', fault: FakeFault, times: number, ref?: string): void {
    this.faults.push({ op, fault, times, ...(ref !== undefined ? { ref } : {}) });
  }

  /** Faults stop: injected ones that did not fire yet are dropped (a broken layer store stays broken). */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** FB-13: after a cut, every pull fails to register its layers until the engine is wiped. */
  breakLayerStore(): void {
    this.brokenLayerStore = true;
  }

  setContainerState(id: string, change: Partial<Pick<Container, 'running'>> & { locked?: boolean }): void {
    const c = this.containers.get(id);
    if (!c) throw new KeeperError('USAGE', `no container ${id}`);
    const running = change.running ?? c.running;
    const service =
      c.service && change.locked !== undefined ? { ...c.service, locked: change.locked } : c.service;
    this.containers.set(id, { id: c.id, imageId: c.imageId, running, ...(service ? { service } : {}) });
  }

  addContainer(container: Container): void {
    this.containers.set(container.id, container);
  }

  removeContainer(id: string): void {
    this.containers.delete(id);
  }

  /** Deletes an image behind image-keeper's back (an engine that lost it, a concurrent removal). */
  dropImage(id: string): void {
    this.deleteImage(id);
  }

  diskBytes(): number {
    let total = this.leakedBytes;
    for (const size of this.layers.values()) total += size;
    return total;
  }

  // ---- Engine port -------------------------------------------------------------------------------

  async listImages(): Promise<EngineImage[]> {
    return [...this.images.values()].map(freeze);
  }

  async inspectImage(refOrId: string): Promise<EngineImage | null> {
    const image = this.find(refOrId);
    return image ? freeze(image) : null;
  }

  async listContainers(): Promise<Container[]> {
    return [...this.containers.values()];
  }

  async pull(ref: string, onProgress: ProgressListener): Promise<EngineImage> {
    this.counters.pulls++;
    this.takeFault('pull', ref);
    if (this.brokenLayerStore) {
      throw new KeeperError('PULL_FAILED', `engine: failed to register layer for ${ref}`, {
        details: { transient: false },
      });
    }
    const manifest = this.registry.resolve(ref);
    const missing = manifest.layers.filter((l) => !this.layers.has(l.digest));
    const bytesTotal = sum(missing.map((l) => l.size));
    let bytesDone = 0;
    let layersDone = 0;
    for (const layer of missing) {
      this.reserve(layer.size, ref);
      this.counters.bytesDownloaded += layer.size;
      this.layers.set(layer.digest, layer.size);
      this.notePeak();
      bytesDone += layer.size;
      layersDone++;
      // A cut thrown from here keeps the layers completed so far, like a real layer store.
      onProgress({ ref, layersDone, layersTotal: missing.length, bytesDone, bytesTotal });
      if (this.betweenLayers) await this.betweenLayers(ref, layersDone);
    }
    return freeze(this.commitImage(manifest, ref));
  }

  async pullDelta(ref: string, sourceImageId: string, onProgress: ProgressListener): Promise<EngineImage> {
    if (!this.supportsDeltas) throw new KeeperError('DELTAS_UNSUPPORTED', 'this engine cannot apply deltas');
    this.counters.deltas++;
    this.takeFault('delta', ref);
    const source = this.images.get(sourceImageId);
    if (!source) {
      throw new KeeperError(
        'DELTA_SOURCE_MISSING',
        `delta for ${ref}: source image ${sourceImageId} is gone (404)`,
      );
    }
    const manifest = this.registry.resolve(ref);
    const existing = this.images.get(manifest.imageId);
    if (existing) return freeze(this.commitImage(manifest, ref));
    // The half-built image is untagged from the start: dangling until the delta completes.
    const workId = fakeId(`delta-work:${manifest.imageId}:${sourceImageId}`);
    const work: StoredImage = { id: workId, repoTags: [], repoDigests: [], layers: [], size: 0 };
    this.images.set(workId, work);
    const missing = manifest.layers.filter((l) => !this.layers.has(l.digest));
    const bytesTotal = sum(missing.map((l) => Math.ceil(l.size * this.deltaRatio)));
    let bytesDone = 0;
    let layersDone = 0;
    for (const layer of missing) {
      const bytes = Math.ceil(layer.size * this.deltaRatio);
      if (!this.images.has(workId)) {
        throw new KeeperError('DELTA_FAILED', `delta for ${ref}: its half-built image was removed under it`);
      }
      if (!this.images.has(sourceImageId)) {
        this.deleteImage(workId);
        throw new KeeperError(
          'DELTA_SOURCE_MISSING',
          `delta for ${ref}: source image ${sourceImageId} vanished mid-delta`,
        );
      }
      this.reserve(layer.size, ref);
      this.counters.bytesDownloaded += bytes;
      this.layers.set(layer.digest, layer.size);
      work.layers.push(layer);
      work.size += layer.size;
      changed(work);
      this.notePeak();
      bytesDone += bytes;
      layersDone++;
      onProgress({ ref, layersDone, layersTotal: missing.length, bytesDone, bytesTotal });
      if (this.betweenLayers) await this.betweenLayers(ref, layersDone);
    }
    if (!this.images.has(workId)) {
      throw new KeeperError('DELTA_FAILED', `delta for ${ref}: its half-built image was removed under it`);
    }
    this.images.delete(workId);
    return freeze(this.commitImage(manifest, ref));
  }

  async removeReference(ref: string): Promise<RemoveReferenceOutcome> {
    const image = this.find(ref);
    if (!image) return 'absent';
    this.counters.removalAttempts.push(image.id);
    this.takeFault('remove', ref);
    const refs = allReferences(image);
    if (!refs.includes(ref)) {
      // By image ID: Docker deletes an image with a single reference and refuses one with several.
      if (refs.length > 1) return 'untagged';
      this.refuseIfUsed(image.id);
      this.deleteImage(image.id);
      return 'deleted';
    }
    // Docker counts a tag plus its repository's digest references as ONE reference (moby
    // isSingleReference): untagging an image's only reference is refused while a container uses it.
    if (isSingleReference(refs)) this.refuseIfUsed(image.id);
    changed(image);
    image.repoTags = image.repoTags.filter((r) => r !== ref);
    image.repoDigests = image.repoDigests.filter((r) => r !== ref);
    if (digestOf(ref) === undefined) {
      // A repository's last tag takes the digest references of that repository with it.
      const repository = repositoryOf(ref);
      if (!image.repoTags.some((t) => repositoryOf(t) === repository)) {
        image.repoDigests = image.repoDigests.filter((d) => repositoryOf(d) !== repository);
      }
    }
    if (allReferences(image).length > 0) return 'untagged';
    this.deleteImage(image.id);
    return 'deleted';
  }

  async removeImage(imageId: string): Promise<'deleted' | 'absent'> {
    if (!this.images.has(imageId)) return 'absent';
    this.counters.removalAttempts.push(imageId);
    this.takeFault('remove', imageId);
    this.refuseIfUsed(imageId);
    this.deleteImage(imageId);
    return 'deleted';
  }

  async diskUsage(): Promise<DiskUsage> {
    const used = new Set<string>();
    for (const image of this.images.values()) for (const l of image.layers) used.add(l.digest);
    let images = 0;
    let partial = this.leakedBytes;
    for (const [digest, size] of this.layers) {
      if (used.has(digest)) images += size;
      else partial += size;
    }
    return { images, partial };
  }

  async pruneUnusedLayers(): Promise<number> {
    const used = new Set<string>();
    for (const image of this.images.values()) for (const l of image.layers) used.add(l.digest);
    let freed = this.leakedBytes;
    this.leakedBytes = 0;
    for (const [digest, size] of [...this.layers]) {
      if (!used.has(digest)) {
        this.layers.delete(digest);
        freed += size;
      }
    }
    return freed;
  }

  // ---- ContainerControl port ---------------------------------------------------------------------

  async kill(container: Container): Promise<void> {
    this.containers.delete(container.id);
  }

  async start(service: TargetService, dockerImageId: string): Promise<Container> {
    assert(this.images.has(dockerImageId), 'a container starts only on an image the engine has', {
      dockerImageId,
    });
    let id = `${service.serviceName}_${service.appId}_${this.nextContainer++}`;
    while (this.containers.has(id)) id = `${service.serviceName}_${service.appId}_${this.nextContainer++}`;
    const container: Container = {
      id,
      imageId: dockerImageId,
      running: true,
      service: {
        appId: service.appId,
        serviceId: service.serviceId,
        serviceName: service.serviceName,
        commit: service.commit,
      },
    };
    this.containers.set(id, container);
    return container;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private find(refOrId: string): StoredImage | undefined {
    const byId = this.images.get(refOrId);
    if (byId) return byId;
    for (const image of this.images.values()) {
      if (image.repoTags.includes(refOrId) || image.repoDigests.includes(refOrId)) return image;
    }
    return undefined;
  }

  /** The image appears, with its digest reference (and the tag it was pulled by), only when complete. */
  private commitImage(manifest: RegistryManifest, ref: string): StoredImage {
    const parsed = parseReference(ref);
    const digestRef = `${manifest.repository}@${manifest.digest}`;
    const tagRef = parsed.digest === undefined ? `${parsed.repository}:${parsed.tag ?? 'latest'}` : undefined;
    let image = this.images.get(manifest.imageId);
    if (!image) {
      image = {
        id: manifest.imageId,
        repoTags: [],
        repoDigests: [],
        layers: [...manifest.layers],
        size: sum(manifest.layers.map((l) => l.size)),
      };
      this.images.set(image.id, image);
    }
    changed(image);
    if (!image.repoDigests.includes(digestRef)) image.repoDigests.push(digestRef);
    if (tagRef !== undefined) {
      // A tag moves: it leaves whichever image had it before.
      for (const other of this.images.values()) {
        if (!other.repoTags.includes(tagRef)) continue;
        changed(other);
        other.repoTags = other.repoTags.filter((t) => t !== tagRef);
      }
      image.repoTags.push(tagRef);
    }
    return image;
  }

  private deleteImage(id: string): void {
    const image = this.images.get(id);
    if (!image) return;
    this.images.delete(id);
    this.counters.deleted.push(id);
    const stillUsed = new Set<string>();
    for (const other of this.images.values()) for (const l of other.layers) stillUsed.add(l.digest);
    for (const l of image.layers) if (!stillUsed.has(l.digest)) this.layers.delete(l.digest);
  }

  private refuseIfUsed(imageId: string): void {
    const user = [...this.containers.values()].find((c) => c.imageId === imageId);
    if (user) {
      throw new KeeperError(
        'IMAGE_IN_USE',
        `conflict: image ${imageId.slice(7, 19)} is being used by container ${user.id} (409)`,
        {
          details: { imageId, container: user.id },
        },
      );
    }
  }

  private reserve(bytes: number, ref: string): void {
    if (this.diskLimit !== undefined && this.diskBytes() + bytes > this.diskLimit) {
      throw new KeeperError('DISK_FULL', `engine: no space left on device while pulling ${ref}`, {
        details: { needed: bytes, used: this.diskBytes(), limit: this.diskLimit, transient: false },
      });
    }
  }

  private notePeak(): void {
    const disk = this.diskBytes();
    this.counters.peakDisk = Math.max(this.counters.peakDisk, disk);
    this.counters.windowPeakDisk = Math.max(this.counters.windowPeakDisk, disk);
  }

  private takeFault(op: 'pull' | 'delta' | 'remove', ref: string): void {
    const fault = this.faults.find(
      (f) => f.op === op && f.times > 0 && (f.ref === undefined || ref.includes(f.ref)),
    );
    if (!fault) return;
    fault.times--;
    throw faultError(fault.fault, ref);
  }
}

function faultError(fault: FakeFault, ref: string): KeeperError {
  switch (fault) {
    case 'registry-500':
      return new KeeperError('REGISTRY_ERROR', `registry: 500 Internal Server Error for ${ref}`, {
        details: { status: 500 },
      });
    case 'registry-404':
      return new KeeperError('REGISTRY_ERROR', `registry: manifest unknown for ${ref} (404)`, {
        details: { status: 404, transient: false },
      });
    case 'registry-401':
      return new KeeperError('REGISTRY_ERROR', `registry: 401 Unauthorized for ${ref}`, {
        details: { status: 401, transient: false },
      });
    case 'timeout':
      return new KeeperError('REGISTRY_ERROR', `registry: timeout pulling ${ref}`, {
        details: { status: 'timeout' },
      });
    case 'disk-full':
      return new KeeperError('DISK_FULL', `engine: no space left on device while pulling ${ref}`, {
        details: { transient: false },
      });
    case 'register-layer':
      return new KeeperError('PULL_FAILED', `engine: failed to register layer for ${ref}`, {
        details: { transient: false },
      });
    case 'source-missing':
      return new KeeperError('DELTA_FAILED', `delta for ${ref}: could not apply delta (source mismatch)`);
  }
}

/** moby's isSingleReference: one tag (or none) plus digest references of that same repository only. */
function isSingleReference(refs: readonly string[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  const tags = refs.filter((r) => digestOf(r) === undefined);
  if (tags.length > 1) return false;
  const digestRepositories = new Set(
    refs.filter((r) => digestOf(r) !== undefined).map((r) => repositoryOf(r)),
  );
  const single = tags[0] ?? refs[0]!;
  return digestRepositories.size === 1 && digestRepositories.has(repositoryOf(single));
}

function freeze(image: StoredImage): EngineImage {
  if (image.view) return image.view;
  const layers = Object.freeze(image.layers.map((l) => Object.freeze({ digest: l.digest, size: l.size })));
  image.view = Object.freeze({
    id: image.id,
    repoTags: Object.freeze([...image.repoTags]) as string[],
    repoDigests: Object.freeze([...image.repoDigests]) as string[],
    layers: layers as Layer[],
    size: sum(layers.map((l) => l.size)),
  });
  return image.view;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** A deterministic `sha256:` ID for fake objects. */
export function fakeId(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}
