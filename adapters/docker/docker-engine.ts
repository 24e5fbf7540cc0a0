import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import type Docker from 'dockerode';
import { KeeperError, isKeeperError } from '../../core/errors.js';
import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import { short } from '../../core/model/plan-step.js';
import type { TargetService } from '../../core/model/target.js';
import type { ContainerControl } from '../../core/ports/container-control.js';
import type { DiskUsage, Engine, ProgressListener, RemoveReferenceOutcome } from '../../core/ports/engine.js';
import { digestOf, parseReference, repositoryOf } from '../../core/reference/image-reference.js';
import { socketClient } from './docker-client.js';
import { containerName, serviceFromLabels, serviceLabels } from './container-labels.js';
import { engineMessageOf, engineUnavailable, httpStatusOf, isUnavailable } from './docker-errors.js';
import { followPullStream, incomplete } from './pull-stream.js';

export interface DockerEngineOptions {
  /**
   * Absolute path of the engine's unix socket. Required: the adapter never falls back to DOCKER_HOST
   * or /var/run/docker.sock, so it cannot silently manage some other engine's images.
   */
  readonly socketPath: string;
  /** Per-request timeout for everything except pulls (default 60 s). */
  readonly timeoutMs?: number;
  /** A pull whose stream stays silent this long is cut and reported PULL_INCOMPLETE (default 5 min). */
  readonly pullIdleTimeoutMs?: number;
  /** Byte-only progress is reported at most this often (default 250 ms); layer changes at once. */
  readonly progressThrottleMs?: number;
  /** Command for images with neither Cmd nor Entrypoint (e.g. ['/bin/busybox', 'sleep', '86400'] in tests). */
  readonly defaultCommand?: readonly string[];
  /** Network mode of started containers (default 'none'). */
  readonly networkMode?: string;
  /** Seconds `kill` gives a container to stop before the engine kills it (default 5). */
  readonly stopTimeoutSeconds?: number;
}

/** `/system/df` refused because another one runs: retried this often, from this backoff, doubling. */
const DF_BUSY_RETRIES = 5;
const DF_BUSY_BACKOFF_MS = 200;

/** One entry of the `DELETE /images/{name}` payload: an array of one-key objects. */
interface RemoveEntry {
  readonly Untagged?: string;
  readonly Deleted?: string;
}

/**
 * The Engine and ContainerControl ports over a stock Docker engine (dockerode). Where it differs from
 * the fake engine, it is because Docker does:
 *  - layers are the image's RootFS diff IDs with size 0 (the per-layer sizes only come with the
 *    history, which diskUsage reads), so `size` is the image's own Size;
 *  - pull progress counts every layer of the image ("Already exists" is done), the fake only missing ones;
 *  - no deltas (supportsDeltas false), and no partial layers to prune: dockerd discards the layers of
 *    a cancelled pull itself and cleans its temp files on restart.
 * Every call that cannot reach the socket fails with ENGINE_UNAVAILABLE naming the socket.
 */
export class DockerEngine implements Engine, ContainerControl {
  readonly supportsDeltas = false;
  readonly socketPath: string;
  private readonly docker: Docker;
  /** Pulls have no request timeout: their own idle watchdog cuts a silent stream instead. */
  private readonly streamDocker: Docker;
  private readonly pullIdleTimeoutMs: number;
  private readonly progressThrottleMs: number;
  private readonly defaultCommand: readonly string[] | undefined;
  private readonly networkMode: string;
  private readonly stopTimeoutSeconds: number;
  /** Layer chain IDs and sizes by image ID (immutable content), for diskUsage. */
  private readonly layerSizeCache = new Map<string, readonly { chainId: string; size: number }[]>();
  /** Removals run one at a time: parallel removal of an image's last tags races inside the engine. */
  private removals: Promise<unknown> = Promise.resolve();

  constructor(options: DockerEngineOptions) {
    const socketPath = (options as Partial<DockerEngineOptions> | undefined)?.socketPath;
    if (typeof socketPath !== 'string' || socketPath.length === 0 || !isAbsolute(socketPath)) {
      throw new KeeperError(
        'USAGE',
        `DockerEngine needs the absolute path of the engine's socket, got ${String(socketPath)}`,
      );
    }
    this.socketPath = socketPath;
    this.docker = socketClient(socketPath, { timeoutMs: options.timeoutMs ?? 60_000 });
    this.streamDocker = socketClient(socketPath);
    this.pullIdleTimeoutMs = options.pullIdleTimeoutMs ?? 300_000;
    this.progressThrottleMs = options.progressThrottleMs ?? 250;
    this.defaultCommand = options.defaultCommand;
    this.networkMode = options.networkMode ?? 'none';
    this.stopTimeoutSeconds = options.stopTimeoutSeconds ?? 5;
  }

  /** From `unix:///path/to/engine.sock`; any other scheme (tcp, ssh, npipe) is refused. */
  static fromUrl(url: string, options: Omit<DockerEngineOptions, 'socketPath'> = {}): DockerEngine {
    const match = /^unix:\/\/(\/.+)$/.exec(url);
    if (!match?.[1]) {
      throw new KeeperError(
        'USAGE',
        `engine URL must be unix:///absolute/path.sock, got ${JSON.stringify(url)}`,
      );
    }
    return new DockerEngine({ ...options, socketPath: match[1] });
  }

  /** Resolves when the engine answers; ENGINE_UNAVAILABLE naming the socket otherwise. */
  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      throw engineUnavailable(this.socketPath, error);
    }
  }

  // ---- Engine: images ----------------------------------------------------------------------------

  async listImages(): Promise<EngineImage[]> {
    let summaries: Docker.ImageInfo[];
    try {
      summaries = await this.docker.listImages({ all: false });
    } catch (error) {
      throw this.failure('list images', error);
    }
    const images: EngineImage[] = [];
    // /images/json has no layers: inspect each (an image removed meanwhile is skipped).
    for (const summary of summaries) {
      const image = await this.inspectImage(summary.Id);
      if (image) images.push(image);
    }
    return images;
  }

  async inspectImage(refOrId: string): Promise<EngineImage | null> {
    const info = await this.inspectRaw(refOrId);
    return info ? toEngineImage(info) : null;
  }

  async pull(ref: string, onProgress: ProgressListener): Promise<EngineImage> {
    parseReference(ref); // INVALID_REFERENCE before anything reaches the engine
    const result = await followPullStream({
      ref,
      onProgress,
      throttleMs: this.progressThrottleMs,
      idleTimeoutMs: this.pullIdleTimeoutMs,
      open: (signal) =>
        this.streamDocker.pull(ref, { abortSignal: signal }) as Promise<NodeJS.ReadableStream>,
      unavailable: (cause) => engineUnavailable(this.socketPath, cause),
    });
    // The final status alone is not proof: confirm the engine holds the reference with the digest.
    const image = await this.inspectImage(ref);
    if (!image) throw incomplete(ref, `the engine said "${result.finalStatus}" but has no image for it`);
    const wanted = digestOf(ref) ?? result.digest;
    if (wanted !== undefined) {
      const repository = repositoryOf(ref);
      const carries = image.repoDigests.some((d) => digestOf(d) === wanted && repositoryOf(d) === repository);
      if (!carries) {
        throw incomplete(
          ref,
          `image ${short(image.id)} does not carry ${repository}@${wanted} (${image.repoDigests.join(', ') || 'no digests'})`,
        );
      }
    }
    return image;
  }

  async pullDelta(ref: string, _sourceImageId: string, _onProgress: ProgressListener): Promise<EngineImage> {
    throw new KeeperError(
      'DELTAS_UNSUPPORTED',
      `docker engine at ${this.socketPath} cannot apply deltas (pulling ${ref})`,
    );
  }

  async removeReference(ref: string): Promise<RemoveReferenceOutcome> {
    return this.serialized(async () => {
      let payload: unknown;
      try {
        // No force: Docker untags while other references remain and refuses (409) while a container
        // would lose the image's last reference.
        payload = await this.docker.getImage(ref).remove();
      } catch (error) {
        if (httpStatusOf(error) === 404) return 'absent';
        if (httpStatusOf(error) === 409) throw this.inUse(ref, error);
        throw this.failure(`remove ${ref}`, error);
      }
      return removedSomething(payload) ? 'deleted' : 'untagged';
    });
  }

  async removeImage(imageId: string): Promise<'deleted' | 'absent'> {
    return this.serialized(async () => {
      const image = await this.inspectRaw(imageId);
      if (!image) return 'absent';
      // force would delete from under a stopped container: refuse first, on the full ID. (A container
      // created by someone else between this check and the removal is not covered: no API closes that gap.)
      const user = (await this.listContainers()).find((c) => c.imageId === image.Id);
      if (user) {
        throw new KeeperError(
          'IMAGE_IN_USE',
          `image ${short(image.Id)} is used by container ${user.id.slice(0, 12)}: not removed`,
          {
            details: { imageId: image.Id, container: user.id, reason: 'container' },
          },
        );
      }
      let payload: unknown;
      try {
        // force: an image with several references cannot be deleted by ID otherwise.
        payload = await this.docker.getImage(image.Id).remove({ force: true });
      } catch (error) {
        if (httpStatusOf(error) === 404) return 'absent';
        if (httpStatusOf(error) === 409) throw this.inUse(image.Id, error);
        throw this.failure(`remove ${image.Id}`, error);
      }
      if (!removedSomething(payload) && (await this.inspectRaw(image.Id))) {
        throw new KeeperError(
          'IMAGE_IN_USE',
          `the engine kept image ${short(image.Id)} after a forced removal: ${JSON.stringify(payload)}`,
          {
            details: { imageId: image.Id },
          },
        );
      }
      return 'deleted';
    });
  }

  /**
   * `images` is what `/system/df` calls LayersSize: the bytes of every layer any image (hidden parents
   * included) uses, each shared layer once. It is summed from each image's layer sizes (inspect and
   * history, fetched once per image ID and cached: an image ID names immutable content), keyed by
   * layer chain ID, so a planning pass costs one image list. `/system/df` itself sizes every
   * container's writable layer (slow) and engine 20.10 refuses a second one while one runs (500 "a
   * disk usage operation is already running"); it is asked only for an image whose history does not
   * map onto its layers one to one, and that refusal is retried. `partial` is 0: interrupted pulls
   * leave nothing the API can see, dockerd discards them itself.
   */
  async diskUsage(): Promise<DiskUsage> {
    let summaries: Docker.ImageInfo[];
    try {
      summaries = await this.docker.listImages({ all: true });
    } catch (error) {
      throw this.failure('list images', error);
    }
    const layerSizes = new Map<string, number>();
    const listed = new Set<string>();
    for (const summary of summaries) {
      listed.add(summary.Id);
      const layers = await this.layerSizesOf(summary.Id);
      if (layers === 'unmapped') return { images: await this.layersSizeFromDf(), partial: 0 };
      for (const layer of layers) layerSizes.set(layer.chainId, layer.size);
    }
    for (const id of this.layerSizeCache.keys()) if (!listed.has(id)) this.layerSizeCache.delete(id);
    let images = 0;
    for (const size of layerSizes.values()) images += size;
    return { images, partial: 0 };
  }

  /** Docker has no API for unreferenced layer data and drops a cancelled pull's layers itself: 0. */
  async pruneUnusedLayers(): Promise<number> {
    return 0;
  }

  // ---- Engine + ContainerControl: containers -----------------------------------------------------

  async listContainers(): Promise<Container[]> {
    let infos: Docker.ContainerInfo[];
    try {
      infos = await this.docker.listContainers({ all: true });
    } catch (error) {
      throw this.failure('list containers', error);
    }
    return infos.map((info) => {
      const service = serviceFromLabels(info.Labels);
      return {
        id: info.Id,
        imageId: info.ImageID,
        running: info.State === 'running',
        ...(service ? { service } : {}),
      };
    });
  }

  async start(service: TargetService, dockerImageId: string): Promise<Container> {
    const image = await this.inspectRaw(dockerImageId);
    if (!image)
      throw new KeeperError(
        'IMAGE_NOT_FOUND',
        `cannot start ${service.serviceName}: no image ${dockerImageId}`,
      );
    const hasCommand = (image.Config.Cmd?.length ?? 0) > 0 || (image.Config.Entrypoint?.length ?? 0) > 0;
    if (!hasCommand && this.defaultCommand === undefined) {
      throw new KeeperError(
        'USAGE',
        `cannot start ${service.serviceName}: image ${short(image.Id)} has no CMD or ENTRYPOINT and no defaultCommand is configured`,
      );
    }
    const name = containerName(service);
    const labels = serviceLabels(service);
    let id: string;
    try {
      const created = await this.docker.createContainer({
        name,
        Image: image.Id,
        Labels: labels,
        ...(hasCommand ? {} : { Cmd: [...(this.defaultCommand ?? [])] }),
        HostConfig: {
          NetworkMode: this.networkMode,
          RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
        },
      });
      id = created.id;
    } catch (error) {
      if (httpStatusOf(error) !== 409) throw this.failure(`create container ${name}`, error);
      // A start cut between create and start left this container: reuse it if it is the same one.
      id = await this.adoptExisting(name, labels, image.Id);
    }
    try {
      await this.docker.getContainer(id).start();
    } catch (error) {
      if (httpStatusOf(error) !== 304) throw this.failure(`start container ${name}`, error);
    }
    const owner = serviceFromLabels(labels);
    return { id, imageId: image.Id, running: true, ...(owner ? { service: owner } : {}) };
  }

  async kill(container: Container): Promise<void> {
    const handle = this.docker.getContainer(container.id);
    try {
      await handle.stop({ t: this.stopTimeoutSeconds });
    } catch (error) {
      // 304: already stopped; 404: already gone.
      if (httpStatusOf(error) !== 304 && httpStatusOf(error) !== 404)
        throw this.failure(`stop container ${container.id}`, error);
    }
    try {
      await handle.remove({ force: true });
    } catch (error) {
      if (httpStatusOf(error) !== 404) throw this.failure(`remove container ${container.id}`, error);
    }
  }

  // ---- internals ---------------------------------------------------------------------------------

  /**
   * The image's layers as chain IDs with their sizes, from inspect (diff IDs) and history (sizes,
   * newest first; an entry without a layer has size 0). Exact when the entries with a size are as many
   * as the layers; otherwise (a layer of 0 bytes hides among the empty entries) 'unmapped'. An image
   * removed meanwhile has none.
   */
  private async layerSizesOf(
    imageId: string,
  ): Promise<readonly { chainId: string; size: number }[] | 'unmapped'> {
    const cached = this.layerSizeCache.get(imageId);
    if (cached) return cached;
    const info = await this.inspectRaw(imageId);
    if (!info) return [];
    let history: { Size?: number }[];
    try {
      history = (await this.docker.getImage(imageId).history()) as { Size?: number }[];
    } catch (error) {
      if (httpStatusOf(error) === 404) return [];
      throw this.failure(`read the history of ${imageId}`, error);
    }
    const diffIds = info.RootFS.Layers ?? [];
    const sizes = history
      .map((entry) => entry.Size ?? 0)
      .filter((size) => size > 0)
      .reverse();
    if (sizes.length !== diffIds.length) return 'unmapped';
    const layers: { chainId: string; size: number }[] = [];
    let chainId = '';
    diffIds.forEach((diffId, index) => {
      chainId =
        index === 0 ? diffId : `sha256:${createHash('sha256').update(`${chainId} ${diffId}`).digest('hex')}`;
      layers.push({ chainId, size: sizes[index] ?? 0 });
    });
    this.layerSizeCache.set(imageId, layers);
    return layers;
  }

  /** `/system/df`'s LayersSize; its "already running" refusal (another df in flight) is retried. */
  private async layersSizeFromDf(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      try {
        const df = (await this.docker.df()) as { LayersSize?: number };
        if (typeof df.LayersSize !== 'number') {
          throw new KeeperError(
            'ENGINE_UNAVAILABLE',
            `docker engine at ${this.socketPath} reported no LayersSize in /system/df`,
          );
        }
        return df.LayersSize;
      } catch (error) {
        const busy = httpStatusOf(error) === 500 && /already running/i.test(engineMessageOf(error));
        if (!busy || attempt >= DF_BUSY_RETRIES) throw this.failure('report disk usage', error);
        await new Promise((resolve) => setTimeout(resolve, DF_BUSY_BACKOFF_MS * 2 ** attempt));
      }
    }
  }

  private async inspectRaw(refOrId: string): Promise<Docker.ImageInspectInfo | null> {
    try {
      return await this.docker.getImage(refOrId).inspect();
    } catch (error) {
      if (httpStatusOf(error) === 404) return null;
      throw this.failure(`inspect ${refOrId}`, error);
    }
  }

  private async adoptExisting(
    name: string,
    labels: Record<string, string>,
    imageId: string,
  ): Promise<string> {
    let existing: Docker.ContainerInspectInfo;
    try {
      existing = await this.docker.getContainer(name).inspect();
    } catch (error) {
      throw this.failure(`inspect container ${name}`, error);
    }
    const same =
      existing.Image === imageId &&
      Object.entries(labels).every(([k, v]) => existing.Config.Labels?.[k] === v);
    if (!same) {
      throw new KeeperError(
        'USAGE',
        `container name ${name} is taken by ${existing.Id.slice(0, 12)} on image ${short(existing.Image)}, not by this service on ${short(imageId)}`,
        {
          details: { name, container: existing.Id, imageId: existing.Image },
        },
      );
    }
    return existing.Id;
  }

  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.removals.then(operation, operation);
    this.removals = run.catch(() => undefined);
    return run;
  }

  /**
   * A 409 from image removal. `details.reason` tells the two hard conflicts apart: 'container' (a
   * container uses it; retried until the container goes) and 'child-images' (an image was built FROM
   * it, e.g. by an operator: not even force deletes it, and nothing image-keeper does will change that).
   */
  private inUse(what: string, error: unknown): KeeperError {
    const message = engineMessageOf(error);
    const container = /container ([0-9a-f]{12,64})/.exec(message)?.[1];
    const refused = /referenced image ([0-9a-f]{12,64})|unable to delete ([0-9a-f]{12,64})/.exec(message);
    const image = refused?.[1] ?? refused?.[2];
    const reason = /dependent child images/i.test(message) ? 'child-images' : 'container';
    return new KeeperError('IMAGE_IN_USE', `cannot remove ${what}: ${message.replace(/\s+/g, ' ')} (409)`, {
      cause: error,
      details: {
        ref: what,
        reason,
        ...(container ? { container } : {}),
        ...(image ? { imageId: image } : {}),
      },
    });
  }

  /** Socket failures and engine-side errors (5xx) are ENGINE_UNAVAILABLE; a refused request is USAGE. */
  private failure(what: string, error: unknown): KeeperError {
    if (isKeeperError(error)) return error;
    if (isUnavailable(error)) return engineUnavailable(this.socketPath, error);
    const status = httpStatusOf(error);
    const code = status !== undefined && status < 500 ? 'USAGE' : 'ENGINE_UNAVAILABLE';
    return new KeeperError(
      code,
      `docker engine at ${this.socketPath} could not ${what}: ${engineMessageOf(error)}${status === undefined ? '' : ` (${status})`}`,
      {
        cause: error,
        details: {
          socketPath: this.socketPath,
          ...(status === undefined ? {} : { status }),
          transient: code === 'ENGINE_UNAVAILABLE',
        },
      },
    );
  }
}

function toEngineImage(info: Docker.ImageInspectInfo): EngineImage {
  return {
    id: info.Id,
    repoTags: (info.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
    repoDigests: (info.RepoDigests ?? []).filter((d) => d !== '<none>@<none>'),
    // Docker reports no per-layer sizes: 0 here, the image's Size below (see the class comment).
    layers: (info.RootFS.Layers ?? []).map((digest) => ({ digest, size: 0 })),
    size: info.Size,
  };
}

function removedSomething(payload: unknown): boolean {
  if (!Array.isArray(payload)) {
    throw new KeeperError(
      'ENGINE_UNAVAILABLE',
      `unexpected image removal payload: ${JSON.stringify(payload)}`,
    );
  }
  return (payload as RemoveEntry[]).some((entry) => typeof entry.Deleted === 'string');
}
