import { createHash } from 'node:crypto';
import type { Container } from '../core/model/container.js';
import type { EngineImage, Layer } from '../core/model/engine-image.js';
import type { ImageRow } from '../core/model/image-row.js';
import type { Target } from '../core/model/target.js';
import { parseReference } from '../core/reference/image-reference.js';
import type { CompiledScenario, RegistryImage } from '../sim/scenario/compiled-scenario.js';

/** One consistent read of a real device. */
export interface DeviceSnapshot {
  readonly rows: readonly ImageRow[];
  readonly images: readonly EngineImage[];
  readonly containers: readonly Container[];
  readonly target: Target | null;
  /** Where and when it was taken, for the scenario's description. */
  readonly origin: {
    readonly host: string;
    readonly time: string;
    readonly db: string;
    readonly engine: string;
  };
}

/**
 * A scenario that starts the fakes in the device's state and replays its next start (the runner boots:
 * startup cleanup, then apply of the persisted target; then the `restart` step does it once more, as a
 * device that lost power again would). The only expectation is convergence: the invariants the runner
 * checks on every port call are the point.
 *
 * What the fakes cannot know is filled in, never guessed silently:
 *  - layer sizes are 0: Docker reports no per-layer sizes, so byte budgets mean nothing in a capture;
 *  - the registry serves every image the engine holds under each of its digests (and tags), and, for
 *    target images the engine does not hold yet, a placeholder image whose ID and single layer derive
 *    from the reference: compare such images by digest, not by ID.
 */
export function captureScenario(snapshot: DeviceSnapshot, file: string): CompiledScenario {
  const registry = new Map<string, RegistryImage>();
  const usedTags = new Set<string>();
  const add = (entry: RegistryImage): void => {
    const key = `${entry.repository}@${entry.digest}`;
    if (registry.has(key)) return;
    const tags = entry.tags.filter((t) => !usedTags.has(`${entry.repository}:${t}`));
    for (const t of tags) usedTags.add(`${entry.repository}:${t}`);
    registry.set(key, { ...entry, tags });
  };

  for (const image of snapshot.images) {
    for (const ref of image.repoDigests) {
      const parsed = parseReference(ref);
      if (parsed.digest === undefined) continue;
      const tags = image.repoTags.flatMap((t) => {
        const tagged = parseReference(t);
        return tagged.repository === parsed.repository && tagged.tag !== undefined ? [tagged.tag] : [];
      });
      add({
        repository: parsed.repository,
        digest: parsed.digest,
        imageId: image.id,
        layers: image.layers,
        tags,
      });
    }
  }

  const target = snapshot.target;
  const wanted = target ? [...target.services, ...target.dependent].map((i) => i.name) : [];
  for (const name of wanted) {
    const ref = parseReference(name);
    if (ref.digest !== undefined) {
      if (registry.has(`${ref.repository}@${ref.digest}`)) continue;
      // Identity by digest: the same manifest under another repository is the same image.
      const same = snapshot.images.find((i) =>
        i.repoDigests.some((d) => parseReference(d).digest === ref.digest),
      );
      add(
        same
          ? {
              repository: ref.repository,
              digest: ref.digest,
              imageId: same.id,
              layers: same.layers,
              tags: [],
            }
          : placeholder(ref.repository, ref.digest, []),
      );
      continue;
    }
    const tag = ref.tag ?? 'latest';
    if (usedTags.has(`${ref.repository}:${tag}`)) continue;
    const tagged = snapshot.images.find((i) => i.repoTags.includes(`${ref.repository}:${tag}`));
    const digest = sha256(`image-keeper capture: manifest of ${ref.repository}:${tag}`);
    add(
      tagged
        ? { repository: ref.repository, digest, imageId: tagged.id, layers: tagged.layers, tags: [tag] }
        : placeholder(ref.repository, digest, [tag]),
    );
  }

  const { host, time, db, engine } = snapshot.origin;
  return {
    file,
    name: `capture-${host.replace(/[^A-Za-z0-9_.-]/g, '-')}`,
    description:
      `Captured by image-keeper capture on ${host} at ${time} (state DB ${db}, engine ${engine}). ` +
      'Replays the next start: startup cleanup, then apply of the persisted target. Layer sizes are 0 ' +
      '(Docker reports none); images the engine did not hold yet have placeholder IDs: compare them by digest.',
    config: { deltas: false, engineDeltas: false, systemApps: [] },
    registry: [...registry.values()],
    initial: {
      images: snapshot.images,
      partialLayers: [],
      rows: snapshot.rows,
      containers: snapshot.containers,
      target,
      dependent: [],
    },
    steps: [{ kind: 'restart' }],
    expect: {
      present: [],
      absent: [],
      noDangling: false,
      converged: true,
      alwaysPresent: [],
      neverRemoved: [],
    },
    symbols: {},
  };
}

function placeholder(repository: string, digest: string, tags: readonly string[]): RegistryImage {
  const layers: Layer[] = [
    { digest: sha256(`image-keeper capture: layer of ${repository}@${digest}`), size: 0 },
  ];
  return {
    repository,
    digest,
    imageId: sha256(`image-keeper capture: config of ${repository}@${digest}`),
    layers,
    tags,
  };
}

function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
