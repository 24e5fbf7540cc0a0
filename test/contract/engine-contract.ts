import { afterEach, describe, expect, it, type TestContext } from 'vitest';

import { KeeperError, isKeeperError } from '../../core/errors.js';
import { isDangling } from '../../core/model/engine-image.js';
import type { TargetService } from '../../core/model/target.js';
import type { ContainerControl } from '../../core/ports/container-control.js';
import type { Engine, PullProgress } from '../../core/ports/engine.js';
import { repositoryOf } from '../../core/reference/image-reference.js';

export interface EngineContractRefs {
  /** Digest reference the registry serves; shares its first two layers with `main2`. */
  readonly main1: string;
  /** Digest reference in the same repository as `main1`, sharing its lower layers. */
  readonly main2: string;
  /** Digest reference of an unrelated image (shares at most a base layer). */
  readonly worker1: string;
  /** A tag in main1's repository that resolves to main1's manifest. */
  readonly main1Tag: string;
  /** A second tag in main1's repository resolving to main1's manifest. */
  readonly main1OtherTag: string;
}

/** What the contract needs beyond the ports: ways to make containers the ports cannot make. */
export interface EngineContractControls {
  /** Creates a container without image-keeper's labels (an operator's, a supervisor's); returns its id. */
  addForeignContainer(imageId: string): Promise<string>;
  /** Stops a container without removing it. */
  stopContainer(id: string): Promise<void>;
}

export interface EngineContractSubject {
  readonly engine: Engine & ContainerControl;
  readonly refs: EngineContractRefs;
  readonly controls: EngineContractControls;
  readonly cleanup: () => Promise<void>;
}

export interface EngineContractOptions {
  /**
   * Tests this engine is KNOWN to fail, by title, with the reason. They still run, as `it.fails`: the
   * assertion stays exactly as strict, the run shows the difference, and fixing the engine makes the
   * test fail until the entry is removed.
   */
  readonly knownDifferences?: Readonly<Record<string, string>>;
}

const SERVICE: TargetService = {
  name: 'unused',
  appId: 7,
  serviceId: 70,
  serviceName: 'main',
  imageId: 700,
  releaseId: 7000,
  commit: 'c0ffee1234567890',
  strategy: 'download-then-kill',
};

/**
 * The behaviour of the Engine + ContainerControl ports that both the fake engine (which the simulator
 * trusts) and the Docker adapter must have, in Docker's terms. Each test gets a fresh, empty engine.
 */
export function engineContract(
  name: string,
  makeEngine: () => Promise<EngineContractSubject>,
  options: EngineContractOptions = {},
): void {
  const known = options.knownDifferences ?? {};
  const test = (title: string, body: (context: TestContext) => Promise<void>): void => {
    const reason = known[title];
    if (reason === undefined) it(title, body);
    else it.fails(`${title} [known difference: ${reason}]`, body);
  };

  describe(`Engine + ContainerControl contract: ${name}`, () => {
    const subjects: EngineContractSubject[] = [];
    const fresh = async (): Promise<EngineContractSubject> => {
      const subject = await makeEngine();
      subjects.push(subject);
      return subject;
    };

    afterEach(async () => {
      for (const subject of subjects.splice(0)) await subject.cleanup();
    });

    test('starts with no images and no containers', async () => {
      const { engine } = await fresh();
      expect(await engine.listImages()).toEqual([]);
      expect(await engine.listContainers()).toEqual([]);
    });

    test('pull by digest gives a complete image with that repoDigest and no tag, reporting progress', async () => {
      const { engine, refs } = await fresh();
      const progress: PullProgress[] = [];
      const image = await engine.pull(refs.main1, (p) => progress.push(p));
      expect(image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(image.repoDigests).toEqual([refs.main1]);
      expect(image.repoTags).toEqual([]);
      expect(image.layers.length).toBeGreaterThan(0);
      expect(await engine.inspectImage(image.id)).toEqual(image);
      expect(await engine.listImages()).toEqual([image]);

      expect(progress.length).toBeGreaterThan(0);
      for (const p of progress) {
        expect(p.ref).toBe(refs.main1);
        expect(p.layersDone).toBeLessThanOrEqual(p.layersTotal);
        expect(p.bytesDone).toBeLessThanOrEqual(p.bytesTotal);
      }
      for (let i = 1; i < progress.length; i++) {
        expect(progress[i]!.layersDone).toBeGreaterThanOrEqual(progress[i - 1]!.layersDone);
      }
      const last = progress.at(-1)!;
      expect(last.layersDone).toBe(last.layersTotal);
      expect(last.bytesDone).toBe(last.bytesTotal);
      expect(last.bytesTotal).toBeGreaterThan(0);
    });

    test('a second pull of the same digest downloads nothing and returns the same image', async () => {
      const { engine, refs } = await fresh();
      const first = await engine.pull(refs.main1, () => undefined);
      const progress: PullProgress[] = [];
      const again = await engine.pull(refs.main1, (p) => progress.push(p));
      expect(again).toEqual(first);
      expect(progress.every((p) => p.bytesDone === 0 && p.bytesTotal === 0)).toBe(true);
      expect(await engine.listImages()).toHaveLength(1);
    });

    test('a pull reuses the layers it shares with an image already present', async () => {
      const { engine, refs } = await fresh();
      const main1Bytes: number[] = [];
      const main2Bytes: number[] = [];
      const main1 = await engine.pull(refs.main1, (p) => main1Bytes.push(p.bytesTotal));
      const main2 = await engine.pull(refs.main2, (p) => main2Bytes.push(p.bytesTotal));
      expect(main2.id).not.toBe(main1.id);
      expect(main2.layers.slice(0, 2).map((l) => l.digest)).toEqual(
        main1.layers.slice(0, 2).map((l) => l.digest),
      );
      expect(Math.max(0, ...main2Bytes)).toBeLessThan(Math.max(0, ...main1Bytes));
      expect((await engine.listImages()).map((i) => i.id).sort()).toEqual([main1.id, main2.id].sort());
    });

    test('inspect finds an image by id and by reference, and answers null for unknown ones', async () => {
      const { engine, refs } = await fresh();
      const image = await engine.pull(refs.main1, () => undefined);
      expect(await engine.inspectImage(image.id)).toEqual(image);
      expect(await engine.inspectImage(refs.main1)).toEqual(image);
      expect(await engine.inspectImage(`sha256:${'0'.repeat(64)}`)).toBeNull();
      expect(await engine.inspectImage(refs.main2)).toBeNull();
      expect(await engine.inspectImage(unknownDigestRef(refs))).toBeNull();
    });

    test('an image pulled by digest only is not dangling', async () => {
      const { engine, refs } = await fresh();
      await engine.pull(refs.main1, () => undefined);
      const images = await engine.listImages();
      expect(images).toHaveLength(1);
      expect(images[0]!.repoTags).toEqual([]);
      expect(isDangling(images[0]!)).toBe(false);
    });

    test('a pull by tag gives the tag and the digest reference of the same image', async () => {
      const { engine, refs } = await fresh();
      const byTag = await engine.pull(refs.main1Tag, () => undefined);
      expect(byTag.repoTags).toEqual([refs.main1Tag]);
      expect(byTag.repoDigests).toEqual([refs.main1]);
      const byDigest = await engine.pull(refs.main1, () => undefined);
      expect(byDigest).toEqual(byTag);
    });

    test('removeReference of the only reference deletes the image; again it is absent', async () => {
      const { engine, refs } = await fresh();
      const image = await engine.pull(refs.main1, () => undefined);
      expect(await engine.removeReference(refs.main1)).toBe('deleted');
      expect(await engine.inspectImage(image.id)).toBeNull();
      expect(await engine.listImages()).toEqual([]);
      expect(await engine.removeReference(refs.main1)).toBe('absent');
    });

    test('removeReference of the digest of an image that keeps a tag untags the digest only', async () => {
      const { engine, refs } = await fresh();
      const image = await engine.pull(refs.main1Tag, () => undefined);
      expect(await engine.removeReference(refs.main1)).toBe('untagged');
      expect(await engine.inspectImage(image.id)).toEqual({
        ...image,
        repoTags: [refs.main1Tag],
        repoDigests: [],
      });
    });

    test('removeReference of one of two tags untags it; the other tag and the digest stay', async () => {
      const { engine, refs } = await fresh();
      await engine.pull(refs.main1Tag, () => undefined);
      const image = await engine.pull(refs.main1OtherTag, () => undefined);
      expect([...image.repoTags].sort()).toEqual([refs.main1Tag, refs.main1OtherTag].sort());
      expect(await engine.removeReference(refs.main1Tag)).toBe('untagged');
      const after = await engine.inspectImage(image.id);
      expect(after?.repoTags).toEqual([refs.main1OtherTag]);
      expect(after?.repoDigests).toEqual([refs.main1]);
    });

    test("removeReference of a repository's last tag also drops that repository's digest references", async () => {
      // Docker (moby image_delete.go): the digest references a tag pull created go with the repository's
      // last tag, so removing the tag deletes an image that has no other references.
      const { engine, refs } = await fresh();
      const image = await engine.pull(refs.main1Tag, () => undefined);
      expect(await engine.removeReference(refs.main1Tag)).toBe('deleted');
      expect(await engine.inspectImage(image.id)).toBeNull();
      expect(await engine.inspectImage(refs.main1)).toBeNull();
    });

    test('removeReference of the last reference is refused with IMAGE_IN_USE while a stopped container uses the image', async () => {
      const { engine, refs, controls } = await fresh();
      const image = await engine.pull(refs.main1, () => undefined);
      const container = await engine.start(SERVICE, image.id);
      await controls.stopContainer(container.id);
      const error = await engine.removeReference(refs.main1).catch((e: unknown) => e);
      expect(isKeeperError(error, 'IMAGE_IN_USE')).toBe(true);
      expect((error as KeeperError).message).not.toContain('\n');
      expect(await engine.inspectImage(image.id)).toEqual(image);
    });

    test("removeReference of a used image's digest is refused while its repository's tag is the only other reference", async () => {
      // Docker counts a tag and the digest references of the same repository as ONE reference
      // (isSingleReference): untagging either would leave the container's image dangling.
      const { engine, refs, controls } = await fresh();
      const image = await engine.pull(refs.main1Tag, () => undefined);
      const container = await engine.start(SERVICE, image.id);
      await controls.stopContainer(container.id);
      const error = await engine.removeReference(refs.main1).catch((e: unknown) => e);
      expect(isKeeperError(error, 'IMAGE_IN_USE')).toBe(true);
      expect(await engine.inspectImage(image.id)).toEqual(image);
    });

    test('removeReference of one of two tags of a used image untags it', async () => {
      const { engine, refs } = await fresh();
      await engine.pull(refs.main1Tag, () => undefined);
      const image = await engine.pull(refs.main1OtherTag, () => undefined);
      await engine.start(SERVICE, image.id);
      expect(await engine.removeReference(refs.main1OtherTag)).toBe('untagged');
      const after = await engine.inspectImage(image.id);
      expect(after?.repoTags).toEqual([refs.main1Tag]);
      expect(after?.repoDigests).toEqual([refs.main1]);
    });

    test('removeImage is refused with IMAGE_IN_USE while a stopped container uses the image, and works after kill', async () => {
      const { engine, refs, controls } = await fresh();
      const image = await engine.pull(refs.main1, () => undefined);
      const container = await engine.start(SERVICE, image.id);
      await controls.stopContainer(container.id);
      const error = await engine.removeImage(image.id).catch((e: unknown) => e);
      expect(isKeeperError(error, 'IMAGE_IN_USE')).toBe(true);
      expect((error as KeeperError).message).not.toContain('\n');
      expect(await engine.inspectImage(image.id)).toEqual(image);

      await engine.kill(container);
      expect(await engine.listContainers()).toEqual([]);
      expect(await engine.removeImage(image.id)).toBe('deleted');
      expect(await engine.inspectImage(image.id)).toBeNull();
      expect(await engine.removeImage(image.id)).toBe('absent');
    });

    test('removeImage deletes an image with several references, leaving other images alone', async () => {
      const { engine, refs } = await fresh();
      await engine.pull(refs.main1Tag, () => undefined);
      const image = await engine.pull(refs.main1OtherTag, () => undefined);
      const worker = await engine.pull(refs.worker1, () => undefined);
      expect(await engine.removeImage(image.id)).toBe('deleted');
      expect(await engine.inspectImage(image.id)).toBeNull();
      expect(await engine.inspectImage(refs.main1Tag)).toBeNull();
      expect(await engine.inspectImage(refs.main1)).toBeNull();
      expect(await engine.listImages()).toEqual([worker]);
    });

    test('listContainers reports the image and service labels of started containers and no service for foreign ones', async () => {
      const { engine, refs, controls } = await fresh();
      const main = await engine.pull(refs.main1, () => undefined);
      const worker = await engine.pull(refs.worker1, () => undefined);
      const started = await engine.start(SERVICE, main.id);
      expect(started.imageId).toBe(main.id);
      expect(started.running).toBe(true);
      expect(started.service).toEqual({
        appId: 7,
        serviceId: 70,
        serviceName: 'main',
        commit: SERVICE.commit,
      });
      const foreignId = await controls.addForeignContainer(worker.id);

      const listed = await engine.listContainers();
      expect(listed).toHaveLength(2);
      const ours = listed.find((c) => c.id === started.id);
      expect(ours?.imageId).toBe(main.id);
      expect(ours?.service).toEqual(started.service);
      const foreign = listed.find((c) => c.id === foreignId);
      expect(foreign?.imageId).toBe(worker.id);
      expect(foreign && 'service' in foreign).toBe(false);

      await engine.kill(started);
      await engine.kill(started); // a container already gone is not an error
      expect((await engine.listContainers()).map((c) => c.id)).toEqual([foreignId]);
    });

    test('pull of a digest the registry does not have fails with a non-transient REGISTRY_ERROR', async () => {
      const { engine, refs } = await fresh();
      const error = await engine.pull(unknownDigestRef(refs), () => undefined).catch((e: unknown) => e);
      expect(isKeeperError(error, 'REGISTRY_ERROR')).toBe(true);
      expect((error as KeeperError).details['transient']).toBe(false);
      expect((error as KeeperError).details['status']).toBe(404);
      expect(await engine.listImages()).toEqual([]);
    });

    test('an exception thrown by onProgress aborts the pull and is rethrown unchanged; no partial image appears', async () => {
      const { engine, refs } = await fresh();
      const cut = new KeeperError('POWER_CUT', 'cut from the progress callback');
      const error = await engine
        .pull(refs.main1, () => {
          throw cut;
        })
        .catch((e: unknown) => e);
      expect(error).toBe(cut);
      // Either nothing, or (if the engine had already committed it) the complete image: never a half.
      const images = await engine.listImages();
      expect(images.every((i) => i.repoDigests.includes(refs.main1))).toBe(true);
      const image = await engine.pull(refs.main1, () => undefined);
      expect(image.repoDigests).toEqual([refs.main1]);
    });

    test('disk usage counts complete images; pruneUnusedLayers reports a byte count', async () => {
      const { engine, refs } = await fresh();
      const empty = await engine.diskUsage();
      expect(empty.images).toBe(0);
      await engine.pull(refs.main1, () => undefined);
      const used = await engine.diskUsage();
      expect(used.images).toBeGreaterThan(0);
      expect(used.partial).toBeGreaterThanOrEqual(0);
      expect(await engine.pruneUnusedLayers()).toBeGreaterThanOrEqual(0);
    });

    test('an engine without delta support rejects pullDelta with DELTAS_UNSUPPORTED', async (context) => {
      const { engine, refs } = await fresh();
      if (engine.supportsDeltas) {
        context.skip();
        return;
      }
      const source = await engine.pull(refs.main1, () => undefined);
      const error = await engine.pullDelta(refs.main2, source.id, () => undefined).catch((e: unknown) => e);
      expect(isKeeperError(error, 'DELTAS_UNSUPPORTED')).toBe(true);
      expect(await engine.inspectImage(refs.main2)).toBeNull();
    });
  });
}

/** A digest reference in main1's repository that no registry serves. */
function unknownDigestRef(refs: EngineContractRefs): string {
  return `${repositoryOf(refs.main1)}@sha256:${'1'.repeat(64)}`;
}
