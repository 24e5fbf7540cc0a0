import { createHash } from 'node:crypto';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import type { RegistryImage } from '../scenario/compiled-scenario.js';

/**
 * The small world random histories are drawn from: images that share layers, a digest served under two
 * repositories (identity by digest), services sharing an image, and dependent-app images.
 */
export interface UniverseImage {
  readonly symbol: string;
  readonly repository: string;
  readonly digest: string;
  readonly id: string;
  readonly name: string;
  readonly layers: readonly Layer[];
}

export function sha(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}

const REGISTRY = '127.0.0.1:5000';
const layer = (name: string, size: number): Layer => ({ digest: sha(`layer:${name}`), size });
const base = layer('base', 1_000_000);
const lib = layer('lib', 200_000);

function img(
  symbol: string,
  path: string,
  layers: readonly Layer[],
  digestSeed = symbol,
  idSeed = symbol,
): UniverseImage {
  const digest = sha(`manifest:${digestSeed}`);
  const repository = `${REGISTRY}/${path}`;
  return { symbol, repository, digest, id: sha(`config:${idSeed}`), name: `${repository}@${digest}`, layers };
}

export const UNIVERSE: readonly UniverseImage[] = [
  img('main1', 'app/main', [base, lib, layer('main1', 30_000)]),
  img('main2', 'app/main', [base, lib, layer('main2', 40_000)]),
  img('main3', 'app/main', [base, layer('main3', 50_000)]),
  // The same manifest served under another repository: the same image, never downloaded twice.
  img('mirror2', 'app/mirror', [base, lib, layer('main2', 40_000)], 'main2', 'main2'),
  // Built identically to main1 but pushed under another name: another digest, the SAME image ID
  // (balena #1434): two rows, two references, one engine image.
  img('twin1', 'app/twin', [base, lib, layer('main1', 30_000)], 'twin1', 'main1'),
  img('worker1', 'app/worker', [base, layer('worker1', 20_000)]),
  img('worker2', 'app/worker', [base, layer('worker2', 25_000)]),
  // The same manifest as worker2, referenced by tag: rows named by tag and by digest share one image.
  {
    ...img('worker-stable', 'app/worker', [base, layer('worker2', 25_000)], 'worker2', 'worker2'),
    name: `${REGISTRY}/app/worker:stable`,
  },
  img('dep1', 'dep/sensor', [layer('dep-base', 300_000), layer('dep1', 10_000)]),
  img('dep2', 'dep/sensor', [layer('dep-base', 300_000), layer('dep2', 12_000)]),
  // Foreign images: never managed by image-keeper.
  img('sv-old', 'sys/sv-h1', [layer('sv-old', 400_000)]),
  img('sv-new', 'sys/sv-h2', [layer('sv-new', 410_000)]),
  img('tool', 'ops/tool', [layer('tool', 50_000)]),
];

export function universeImage(symbol: string): UniverseImage {
  const found = UNIVERSE.find((i) => i.symbol === symbol);
  if (!found) throw new Error(`no image ${symbol} in the universe`);
  return found;
}

export function registryOf(images: readonly UniverseImage[]): RegistryImage[] {
  const byKey = new Map<
    string,
    { repository: string; digest: string; imageId: string; layers: readonly Layer[]; tags: string[] }
  >();
  for (const i of images) {
    const key = `${i.repository}@${i.digest}`;
    const entry = byKey.get(key) ?? {
      repository: i.repository,
      digest: i.digest,
      imageId: i.id,
      layers: i.layers,
      tags: [],
    };
    byKey.set(key, entry);
    // A tag alias: the registry also serves this manifest under the tag.
    if (!i.name.includes('@')) entry.tags.push(i.name.slice(i.name.lastIndexOf(':') + 1));
  }
  return [...byKey.values()];
}

export function engineImageOf(i: UniverseImage): EngineImage {
  return {
    id: i.id,
    repoTags: [],
    repoDigests: [i.name],
    layers: i.layers,
    size: i.layers.reduce((a, l) => a + l.size, 0),
  };
}

export function symbolsOf(images: readonly UniverseImage[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of images) {
    out[i.id] ??= i.symbol;
    out[i.digest] ??= i.symbol;
  }
  return out;
}
