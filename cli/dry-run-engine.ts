import { KeeperError } from '../core/errors.js';
import type { Container } from '../core/model/container.js';
import type { EngineImage } from '../core/model/engine-image.js';
import type { TargetService } from '../core/model/target.js';
import type { ContainerControl } from '../core/ports/container-control.js';
import type { DiskUsage, Engine, ProgressListener, RemoveReferenceOutcome } from '../core/ports/engine.js';

/**
 * An engine that reads the real one and only pretends to remove: `cleanup --dry-run` and `status` run
 * the core's own cleanup code against it (with a copy of the rows), so what they print is exactly what
 * the real run would do, with no second implementation of the rules to drift. Removed images disappear
 * from later reads, as they would.
 */
export class DryRunEngine implements Engine, ContainerControl {
  readonly removedImages: string[] = [];
  readonly removedReferences: string[] = [];

  constructor(private readonly real: Engine) {}

  get supportsDeltas(): boolean {
    return this.real.supportsDeltas;
  }

  async listImages(): Promise<EngineImage[]> {
    return (await this.real.listImages()).filter((image) => !this.removedImages.includes(image.id));
  }

  async inspectImage(refOrId: string): Promise<EngineImage | null> {
    const image = await this.real.inspectImage(refOrId);
    return image && !this.removedImages.includes(image.id) ? image : null;
  }

  listContainers(): Promise<Container[]> {
    return this.real.listContainers();
  }

  diskUsage(): Promise<DiskUsage> {
    return this.real.diskUsage();
  }

  async removeImage(imageId: string): Promise<'deleted' | 'absent'> {
    if (!(await this.inspectImage(imageId))) return 'absent';
    this.removedImages.push(imageId);
    return 'deleted';
  }

  async removeReference(ref: string): Promise<RemoveReferenceOutcome> {
    this.removedReferences.push(ref);
    return 'untagged';
  }

  async pruneUnusedLayers(): Promise<number> {
    return 0;
  }

  pull(ref: string, _onProgress: ProgressListener): Promise<EngineImage> {
    return refuse(`pull ${ref}`);
  }

  pullDelta(ref: string, _sourceImageId: string, _onProgress: ProgressListener): Promise<EngineImage> {
    return refuse(`pull a delta for ${ref}`);
  }

  kill(container: Container): Promise<void> {
    return refuse(`kill container ${container.id}`);
  }

  start(service: TargetService, _dockerImageId: string): Promise<Container> {
    return refuse(`start ${service.serviceName}`);
  }
}

/** Cleanups never pull or switch containers; reaching here is a bug, not something to pretend. */
function refuse(what: string): Promise<never> {
  return Promise.reject(new KeeperError('USAGE', `a dry run cannot ${what}`));
}
