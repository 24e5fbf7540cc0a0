import { fakeId } from '../../adapters/fake-engine/fake-engine.js';
import type { Container } from '../../core/model/container.js';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target, TargetService, UpdateStrategy } from '../../core/model/target.js';
import type {
  CompiledScenario,
  Expectations,
  RegistryImage,
  ScenarioStep,
} from '../../sim/scenario/compiled-scenario.js';

/** Small builders for hand-written scenarios in unit tests (the YAML loader is tested on its own). */
export interface BuiltImage {
  readonly symbol: string;
  readonly repository: string;
  readonly digest: string;
  readonly id: string;
  readonly name: string;
  readonly layers: readonly Layer[];
  readonly registry: RegistryImage;
  /** As the engine holds it after a pull by digest. */
  readonly engine: EngineImage;
}

export function layer(name: string, size: number): Layer {
  return { digest: fakeId(`layer:${name}`), size };
}

export function image(
  symbol: string,
  repository: string,
  layers: readonly Layer[],
  idSymbol = symbol,
): BuiltImage {
  const digest = fakeId(`manifest:${symbol}`);
  const id = fakeId(`config:${idSymbol}`);
  const name = `${repository}@${digest}`;
  const size = layers.reduce((a, l) => a + l.size, 0);
  return {
    symbol,
    repository,
    digest,
    id,
    name,
    layers,
    registry: { repository, digest, imageId: id, layers, tags: [] },
    engine: { id, repoTags: [], repoDigests: [name], layers, size },
  };
}

let rowIds = 1;
export function row(
  img: BuiltImage,
  appId: number,
  serviceName: string,
  commit: string,
  dockerImageId: string | null = img.id,
): ImageRow {
  return {
    id: rowIds++,
    name: img.name,
    appId,
    serviceId: serviceIdOf(serviceName),
    serviceName,
    imageId: 0,
    releaseId: 0,
    commit,
    dockerImageId,
  };
}

export function serviceIdOf(name: string): number {
  let h = 7;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 10_000;
  return h + 1;
}

export function service(
  img: BuiltImage,
  appId: number,
  serviceName: string,
  commit: string,
  strategy: UpdateStrategy = 'download-then-kill',
): TargetService {
  return {
    name: img.name,
    appId,
    serviceId: serviceIdOf(serviceName),
    serviceName,
    imageId: 0,
    releaseId: 0,
    commit,
    strategy,
  };
}

export function container(
  img: BuiltImage,
  appId: number,
  serviceName: string,
  commit: string,
  running = true,
): Container {
  return {
    id: `${serviceName}_${appId}`,
    imageId: img.id,
    running,
    service: { appId, serviceId: serviceIdOf(serviceName), serviceName, commit },
  };
}

export function target(...services: TargetService[]): Target {
  return { services, dependent: [] };
}

export function build(parts: {
  name?: string;
  images: readonly BuiltImage[];
  engine?: readonly EngineImage[];
  partialLayers?: readonly Layer[];
  rows?: readonly ImageRow[];
  containers?: readonly Container[];
  target?: Target | null;
  steps: readonly ScenarioStep[];
  expect?: Partial<Expectations>;
  deltas?: boolean;
  engineDeltas?: boolean;
  diskLimit?: number;
  systemApps?: readonly number[];
}): CompiledScenario {
  const symbols: Record<string, string> = {};
  for (const i of parts.images) {
    symbols[i.id] = i.symbol;
    symbols[i.digest] = i.symbol;
  }
  return {
    file: '<test>',
    name: parts.name ?? 'test',
    description: '',
    config: {
      deltas: parts.deltas ?? false,
      engineDeltas: parts.engineDeltas ?? true,
      systemApps: parts.systemApps ?? [],
      ...(parts.diskLimit !== undefined ? { diskLimit: parts.diskLimit } : {}),
    },
    registry: parts.images.map((i) => i.registry),
    initial: {
      images: parts.engine ?? [],
      partialLayers: parts.partialLayers ?? [],
      rows: parts.rows ?? [],
      containers: parts.containers ?? [],
      target: parts.target ?? null,
      dependent: [],
    },
    steps: parts.steps,
    expect: {
      present: [],
      absent: [],
      noDangling: true,
      converged: true,
      alwaysPresent: [],
      neverRemoved: [],
      ...parts.expect,
    },
    symbols,
  };
}
