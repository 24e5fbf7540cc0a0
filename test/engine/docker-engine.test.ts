/**
 * What only the real Docker adapter does: typed errors from a misbehaving registry (through a loopback
 * proxy), incomplete pulls when the engine's stream is cut, ENGINE_UNAVAILABLE on a dead socket, and
 * how it creates containers. The port behaviour both engines share is in docker-engine.contract.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, test } from 'vitest';
import { DockerEngine } from '../../adapters/docker/docker-engine.js';
import { KeeperError, isKeeperError } from '../../core/errors.js';
import type { TargetService } from '../../core/model/target.js';
import type { PullProgress } from '../../core/ports/engine.js';
import { buildChildImage } from './support/docker-cli.js';
import { FlakyRegistryProxy } from './support/flaky-registry-proxy.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { resetEngine } from './support/reset-engine.js';

const info = inject('engine');
const privateEngine = PrivateEngine.attach(info.engine);
const docker = privateEngine.client(60_000);
const { base, mainV1, workerV1, bigV1 } = info.images;
const SERVICE: TargetService = {
  name: mainV1.digestRef,
  appId: 7,
  serviceId: 70,
  serviceName: 'main',
  imageId: 700,
  releaseId: 7000,
  commit: 'c0ffee1234567890',
  strategy: 'download-then-kill',
};

const adapter = (options: Partial<ConstructorParameters<typeof DockerEngine>[0]> = {}): DockerEngine =>
  new DockerEngine({ socketPath: info.socketPath, timeoutMs: 60_000, stopTimeoutSeconds: 1, ...options });

async function failure(promise: Promise<unknown>): Promise<KeeperError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof KeeperError))
    throw new Error(`expected a KeeperError, got ${String(error)}`, { cause: error });
  return error;
}

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
});

beforeEach(async () => {
  await resetEngine(docker);
});

afterAll(async () => {
  await privateEngine.ensureRunning();
  await resetEngine(docker);
});

describe('construction', () => {
  test('needs an explicit absolute socket path or a unix:// URL, and never defaults', async () => {
    for (const bad of [undefined, '', 'relative/docker.sock']) {
      const error = (() => {
        try {
          new DockerEngine({ socketPath: bad } as unknown as ConstructorParameters<typeof DockerEngine>[0]);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(isKeeperError(error, 'USAGE')).toBe(true);
    }
    for (const url of ['tcp://127.0.0.1:2375', 'unix://', 'unix://relative.sock', info.socketPath]) {
      expect(() => DockerEngine.fromUrl(url)).toThrow(/unix:\/\/\/absolute/);
    }
    const engine = DockerEngine.fromUrl(`unix://${info.socketPath}`);
    expect(engine.socketPath).toBe(info.socketPath);
    await engine.ping();
  });

  test('a DOCKER_HOST pointing elsewhere does not redirect it', async () => {
    const saved = process.env['DOCKER_HOST'];
    process.env['DOCKER_HOST'] = 'tcp://127.0.0.1:9';
    try {
      const engine = adapter();
      await engine.ping();
      expect(await engine.listImages()).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env['DOCKER_HOST'];
      else process.env['DOCKER_HOST'] = saved;
    }
  });
});

describe('a dead socket', () => {
  test('every call fails with ENGINE_UNAVAILABLE naming the socket (missing socket, not a socket)', async () => {
    const missing = join(info.rootDir, 'no-engine-here.sock');
    const notASocket = join(info.rootDir, 'not-a-socket.sock');
    writeFileSync(notASocket, '');
    for (const socketPath of [missing, notASocket]) {
      const engine = new DockerEngine({ socketPath, timeoutMs: 5_000 });
      const calls: [string, () => Promise<unknown>][] = [
        ['ping', () => engine.ping()],
        ['listImages', () => engine.listImages()],
        ['inspectImage', () => engine.inspectImage(mainV1.digestRef)],
        ['listContainers', () => engine.listContainers()],
        ['pull', () => engine.pull(mainV1.digestRef, () => undefined)],
        ['removeReference', () => engine.removeReference(mainV1.digestRef)],
        ['removeImage', () => engine.removeImage(mainV1.imageId)],
        ['diskUsage', () => engine.diskUsage()],
        ['start', () => engine.start(SERVICE, mainV1.imageId)],
        ['kill', () => engine.kill({ id: 'abc', imageId: mainV1.imageId, running: true })],
      ];
      for (const [name, call] of calls) {
        const error = await failure(call());
        expect(error.code, `${name} on ${socketPath}`).toBe('ENGINE_UNAVAILABLE');
        expect(error.message).toContain(socketPath);
        expect(error.details['socketPath']).toBe(socketPath);
      }
      expect((await failure(engine.ping())).message).toMatch(
        new RegExp(
          `^docker engine at ${socketPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} does not answer: `,
        ),
      );
    }
  });
});

describe('pulls', () => {
  let proxy: FlakyRegistryProxy;

  beforeAll(async () => {
    proxy = await FlakyRegistryProxy.start(info.registry.host);
  });

  afterEach(() => {
    proxy.clearFaults();
    proxy.requests.splice(0);
  });

  afterAll(async () => {
    await proxy.stop();
  });

  test('progress adds up per layer and ends complete; a present image pulls with no byte progress', async () => {
    const engine = adapter({ progressThrottleMs: 100 });
    const progress: PullProgress[] = [];
    const image = await engine.pull(bigV1.digestRef, (p) => progress.push(p));
    expect(image.id).toBe(bigV1.imageId);
    expect(image.layers.map((l) => l.digest)).toEqual(bigV1.layers);
    expect(image.layers.every((l) => l.size === 0)).toBe(true);
    expect(image.size).toBe(bigV1.sizeBytes);
    const last = progress.at(-1)!;
    expect(last).toMatchObject({ ref: bigV1.digestRef, layersDone: 2, layersTotal: 2 });
    expect(last.bytesDone).toBe(last.bytesTotal);
    // The big layer is incompressible: its compressed size is about its 30 MiB.
    expect(last.bytesTotal).toBeGreaterThan(25 * 1024 * 1024);
    expect(progress.length).toBeLessThan(200);

    // Same base layer, already there: "Already exists" counts as done and costs no bytes.
    const worker: PullProgress[] = [];
    await engine.pull(workerV1.digestRef, (p) => worker.push(p));
    expect(worker.at(-1)).toMatchObject({ layersDone: 2, layersTotal: 2 });
    expect(worker.at(-1)!.bytesTotal).toBeLessThan(1024 * 1024);

    const again: PullProgress[] = [];
    expect((await engine.pull(bigV1.digestRef, (p) => again.push(p))).id).toBe(bigV1.imageId);
    expect(again).toEqual([]);
  });

  test('a pull by tag through the proxy is confirmed against the digest the engine reported', async () => {
    const ref = proxy.through(mainV1.ref);
    const image = await adapter().pull(ref, () => undefined);
    expect(image.id).toBe(mainV1.imageId);
    expect(image.repoTags).toEqual([ref]);
    expect(image.repoDigests).toEqual([proxy.through(mainV1.digestRef)]);
  });

  // Faults on manifests use tag references: dockerd always resolves a tag at the registry, while a
  // manifest it fetched by digest before may come from its content store without asking.
  const manifestCases: [number, boolean][] = [
    [500, true],
    [401, false],
    [403, false],
    [404, false],
    [429, true],
  ];
  for (const [status, transient] of manifestCases) {
    test(`a manifest answered ${status} fails with REGISTRY_ERROR status ${status}, transient ${transient}`, async () => {
      proxy.inject({ kind: 'status', target: 'manifest', status });
      const ref = proxy.through(workerV1.ref);
      const error = await failure(adapter().pull(ref, () => undefined));
      expect(error.code).toBe('REGISTRY_ERROR');
      expect(error.details['status']).toBe(status);
      expect(error.details['transient']).toBe(transient);
      expect(error.message).toContain(ref);
      expect(proxy.requests.some((r) => r.action === 'status' && r.status === status)).toBe(true);
      expect(await adapter().inspectImage(ref)).toBeNull();
    });
  }

  test('a blob answered 404 fails at once with REGISTRY_ERROR 404, not transient (error event mid-stream)', async () => {
    proxy.inject({ kind: 'status', target: 'blob', status: 404 });
    const ref = proxy.through(workerV1.digestRef);
    const progress: PullProgress[] = [];
    const error = await failure(adapter().pull(ref, (p) => progress.push(p)));
    expect(error).toMatchObject({ code: 'REGISTRY_ERROR', details: { status: 404, transient: false } });
    // The stream had started (layers announced) before the error event arrived.
    expect(progress.length).toBeGreaterThan(0);
    expect(await adapter().listImages()).toEqual([]);
  });

  test('blobs answered 500 fail, after dockerd gives up retrying, with REGISTRY_ERROR 500, transient', async () => {
    proxy.inject({ kind: 'status', target: 'blob', status: 500 });
    const error = await failure(adapter().pull(proxy.through(workerV1.digestRef), () => undefined));
    expect(error).toMatchObject({ code: 'REGISTRY_ERROR', details: { status: 500, transient: true } });
    expect(await adapter().listImages()).toEqual([]);
  });

  test('a blob cut once mid-way is resumed by dockerd (Range request) and the pull completes', async () => {
    proxy.inject({ kind: 'cut', afterBytes: 4 * 1024 * 1024, times: 1 });
    const ref = proxy.through(bigV1.digestRef);
    const image = await adapter().pull(ref, () => undefined);
    expect(image.id).toBe(bigV1.imageId);
    expect(image.repoDigests).toEqual([ref]);
    expect(proxy.requests.filter((r) => r.action === 'cut')).toHaveLength(1);
    expect(proxy.requests.some((r) => r.status === 206)).toBe(true);
  });

  test('a pull whose stream goes silent is cut after pullIdleTimeoutMs: PULL_INCOMPLETE, transient, no image', async () => {
    proxy.inject({ kind: 'stall', afterBytes: 1024 * 1024 });
    const ref = proxy.through(bigV1.digestRef);
    const started = Date.now();
    const error = await failure(adapter({ pullIdleTimeoutMs: 1_500 }).pull(ref, () => undefined));
    expect(error).toMatchObject({ code: 'PULL_INCOMPLETE', details: { transient: true } });
    expect(error.message).toContain('1500 ms');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await adapter().inspectImage(ref)).toBeNull();
  });

  test('a throw from onProgress aborts the pull, is rethrown as is, and the engine keeps no image', async () => {
    const cut = new KeeperError('POWER_CUT', 'power cut mid-pull');
    const seen: PullProgress[] = [];
    const error = await adapter()
      .pull(bigV1.digestRef, (p) => {
        seen.push(p);
        if (p.bytesDone > 0) throw cut;
      })
      .catch((e: unknown) => e);
    expect(error).toBe(cut);
    expect(seen.at(-1)!.layersDone).toBeLessThan(2);
    // dockerd cancels the pull when the request goes away and discards its layers.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await adapter().inspectImage(bigV1.digestRef)).toBeNull();
    expect((await adapter().pull(bigV1.digestRef, () => undefined)).id).toBe(bigV1.imageId);
  });

  test('dockerd killed mid-pull: the cut stream is PULL_INCOMPLETE, then calls are ENGINE_UNAVAILABLE until it is back', async () => {
    proxy.inject({ kind: 'stall', afterBytes: 2 * 1024 * 1024 });
    const engine = adapter();
    let killed: Promise<number> | undefined;
    const error = await failure(
      engine.pull(proxy.through(bigV1.digestRef), () => {
        killed ??= privateEngine.kill9();
      }),
    );
    expect(killed).toBeDefined();
    await killed;
    expect(error).toMatchObject({ code: 'PULL_INCOMPLETE', details: { transient: true } });

    // The socket file is still there but nothing listens on it.
    const down = await failure(engine.listImages());
    expect(down.code).toBe('ENGINE_UNAVAILABLE');
    expect(down.message).toContain(info.socketPath);

    proxy.clearFaults();
    await privateEngine.ensureRunning();
    await engine.ping();
    expect(await engine.inspectImage(bigV1.digestRef)).toBeNull();
  });
});

describe('removal', () => {
  test('removeImage is refused for a created (never started) foreign container, naming image and container on one line', async () => {
    const engine = adapter();
    const image = await engine.pull(workerV1.digestRef, () => undefined);
    const foreign = await docker.createContainer({ Image: image.id, HostConfig: { NetworkMode: 'none' } });
    const error = await failure(engine.removeImage(image.id));
    expect(error.code).toBe('IMAGE_IN_USE');
    expect(error.message).toContain(foreign.id.slice(0, 12));
    expect(error.message).toContain(image.id.slice(7, 19));
    expect(error.message).not.toContain('\n');
    const byRef = await failure(engine.removeReference(workerV1.digestRef));
    expect(byRef.code).toBe('IMAGE_IN_USE');
    expect(byRef.message).toContain(foreign.id.slice(0, 12));
    expect(byRef.message).not.toContain('\n');
    expect(byRef.details['container']).toBe(foreign.id.slice(0, 12));
    await foreign.remove();
    expect(await engine.removeReference(workerV1.digestRef)).toBe('deleted');
  });

  test("removeImage of an image someone built FROM is IMAGE_IN_USE with reason 'child-images'; its references can still go", async () => {
    const engine = adapter();
    const image = await engine.pull(workerV1.digestRef, () => undefined);
    await buildChildImage(
      info.socketPath,
      join(info.rootDir, 'docker-engine-child'),
      workerV1.digestRef,
      'operator/child:1',
      'child=yes',
    );
    const error = await failure(engine.removeImage(image.id));
    expect(error.code).toBe('IMAGE_IN_USE');
    expect(error.details['reason']).toBe('child-images');
    expect(error.message).toContain('dependent child images');
    expect(error.message).not.toContain('\n');
    // The parent keeps its digest reference; untagging it is allowed and the image stays (for the child).
    expect(await engine.removeReference(workerV1.digestRef)).toBe('untagged');
    expect(await engine.inspectImage(image.id)).toMatchObject({
      id: image.id,
      repoTags: [],
      repoDigests: [],
    });
    await resetEngine(docker);
  });

  test('concurrent removals run one at a time and all succeed', async () => {
    const engine = adapter();
    const images = [];
    for (const ref of [mainV1.digestRef, workerV1.digestRef, base.digestRef])
      images.push(await engine.pull(ref, () => undefined));
    const outcomes = await Promise.all([
      engine.removeReference(mainV1.digestRef),
      engine.removeImage(images[1]!.id),
      engine.removeReference(base.digestRef),
      engine.removeImage(images[1]!.id),
    ]);
    expect(outcomes).toEqual(['deleted', 'deleted', 'deleted', 'absent']);
    expect(await engine.listImages()).toEqual([]);
  });
});

describe('containers', () => {
  test('start creates ik_<service>_<app>_<commit> with network none, unless-stopped and the labels; a repeated start adopts it', async () => {
    const engine = adapter();
    const image = await engine.pull(mainV1.digestRef, () => undefined);
    const started = await engine.start(SERVICE, image.id);
    const inspected = await docker.getContainer(started.id).inspect();
    expect(inspected.Name).toBe('/ik_main_7_c0ffee1');
    expect(inspected.Image).toBe(image.id);
    expect(inspected.HostConfig.NetworkMode).toBe('none');
    expect(inspected.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
    expect(inspected.Config.Labels).toMatchObject({
      'io.image-keeper.app-id': '7',
      'io.image-keeper.service-id': '70',
      'io.image-keeper.service-name': 'main',
      'io.image-keeper.commit': SERVICE.commit,
    });
    // The image's own CMD is kept when it has one.
    expect(inspected.Config.Cmd).toEqual(['/bin/sh', '-c', 'cat /image-keeper/name']);

    const again = await engine.start(SERVICE, image.id);
    expect(again.id).toBe(started.id);
    const other = await engine.pull(workerV1.digestRef, () => undefined);
    expect((await failure(engine.start(SERVICE, other.id))).code).toBe('USAGE');

    await engine.kill(started);
    expect(await engine.listContainers()).toEqual([]);
  });

  test('an image without CMD or ENTRYPOINT runs defaultCommand, and is refused without one', async () => {
    // A CMD-less image: the base image's filesystem exported and imported again (import sets no CMD).
    await adapter().pull(base.digestRef, () => undefined);
    const holder = await docker.createContainer({ Image: base.imageId, HostConfig: { NetworkMode: 'none' } });
    const tar = await holder.export();
    const imported = await docker.importImage(tar, { repo: `${base.repository}-nocmd`, tag: 'v1' });
    let output = '';
    for await (const chunk of imported as AsyncIterable<Buffer>) output += chunk.toString();
    await holder.remove();
    const committed = { Id: /"status":"(sha256:[0-9a-f]{64})"/.exec(output)?.[1] ?? '' };
    expect(committed.Id, output).toMatch(/^sha256:/);
    const bare = await docker.getImage(committed.Id).inspect();
    expect((bare.Config.Cmd ?? []).length + (bare.Config.Entrypoint?.length ?? 0)).toBe(0);

    expect((await failure(adapter().start(SERVICE, committed.Id))).code).toBe('USAGE');

    const engine = adapter({ defaultCommand: ['/bin/busybox', 'sleep', '86400'] });
    const started = await engine.start(SERVICE, committed.Id);
    const inspected = await docker.getContainer(started.id).inspect();
    expect(inspected.Config.Cmd).toEqual(['/bin/busybox', 'sleep', '86400']);
    expect(inspected.State.Running).toBe(true);
    const listed = await engine.listContainers();
    expect(listed).toEqual([
      { id: started.id, imageId: committed.Id, running: true, service: started.service },
    ]);

    await engine.kill(started);
    await engine.kill(started);
    expect(await engine.listContainers()).toEqual([]);
  });

  test('listContainers reads the locked label, and half-labelled containers are foreign', async () => {
    const engine = adapter();
    const image = await engine.pull(workerV1.digestRef, () => undefined);
    const labels = {
      'io.image-keeper.app-id': '7',
      'io.image-keeper.service-id': '71',
      'io.image-keeper.service-name': 'worker',
      'io.image-keeper.commit': 'abc',
      'io.image-keeper.locked': 'true',
    };
    const locked = await docker.createContainer({
      Image: image.id,
      Labels: labels,
      HostConfig: { NetworkMode: 'none' },
    });
    const { 'io.image-keeper.commit': _commit, ...half } = labels;
    const partial = await docker.createContainer({
      Image: image.id,
      Labels: half,
      HostConfig: { NetworkMode: 'none' },
    });
    const listed = await engine.listContainers();
    expect(listed.find((c) => c.id === locked.id)).toEqual({
      id: locked.id,
      imageId: image.id,
      running: false,
      service: { appId: 7, serviceId: 71, serviceName: 'worker', commit: 'abc', locked: true },
    });
    expect(listed.find((c) => c.id === partial.id)).toEqual({
      id: partial.id,
      imageId: image.id,
      running: false,
    });
  });
});

describe('disk usage', () => {
  test('images is the engine-wide layer size and partial is 0', async () => {
    const engine = adapter();
    expect(await engine.diskUsage()).toEqual({ images: 0, partial: 0 });
    await engine.pull(bigV1.digestRef, () => undefined);
    await engine.pull(workerV1.digestRef, () => undefined);
    const usage = await engine.diskUsage();
    const df = (await docker.df()) as { LayersSize: number };
    expect(usage).toEqual({ images: df.LayersSize, partial: 0 });
    // Shared base layer counted once: less than the two images' sizes added up.
    expect(usage.images).toBeLessThan(bigV1.sizeBytes + workerV1.sizeBytes);
    expect(usage.images).toBeGreaterThan(bigV1.sizeBytes);
    expect(await engine.pruneUnusedLayers()).toBe(0);
  });
});
