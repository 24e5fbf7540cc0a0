/**
 * Translates a scenario's symbolic images into real ones. A scenario's digests are sha256 of strings
 * that no registry can serve, so every image of its registry is built by hand (hand-built-images.ts)
 * with one layer per scenario layer (sharing as in the scenario, payloads scaled down 1000x) and pushed
 * to the private registry under a per-scenario namespace; the compiled scenario is then rewritten from
 * the fake digests, image IDs, layers and repositories to the real ones. Both the fakes and the real
 * engine run the rewritten scenario, so their final states compare value for value.
 */
import type { CompiledScenario, ScenarioStep } from '../../../sim/scenario/compiled-scenario.js';
import type { Layer } from '../../../core/model/engine-image.js';
import { digestOf, repositoryOf } from '../../../core/reference/image-reference.js';
import {
  builtLayer,
  handBuiltImage,
  loadArchive,
  pushHandBuiltImage,
  type HandBuiltLayer,
} from './hand-built-images.js';

/** fake 64-hex to real 64-hex (manifest digests, image IDs, layer digests), and repositories. */
export interface ScenarioMapping {
  readonly hex: ReadonlyMap<string, string>;
  readonly repositories: ReadonlyMap<string, string>;
  /** `docker load` archives (untagged) of initial images that carry no digest reference, by real image ID. */
  readonly archives: ReadonlyMap<string, Buffer>;
  /** Real digest references pushed only so the initial engine can hold them: withdrawn after the preload. */
  readonly unserved: readonly string[];
}

export interface SupportOptions {
  /** Power cuts at named points can run: apply runs in a real process with the crash hook. */
  readonly processCuts: boolean;
}

/** Scaled-down payload: scenario sizes are megabytes, the real layers need only be distinct. */
export function realLayerBytes(size: number): number {
  return Math.max(1, Math.min(64 * 1024, Math.round(size / 1000)));
}

/**
 * Why the scenario cannot run on a stock Docker engine as it is (empty when it can). Deltas, disk
 * budgets, partial layers and injected engine faults exist only in the fakes; update locks are labels,
 * which a real container cannot change after it is created.
 */
export function engineSupportOf(scenario: CompiledScenario, options: SupportOptions): string[] {
  const reasons: string[] = [];
  if (scenario.config.deltas || scenario.config.engineDeltas) reasons.push('uses deltas');
  if (scenario.config.diskLimit !== undefined) reasons.push('has a disk limit');
  if (scenario.initial.partialLayers.length > 0) reasons.push('starts with partial layers');
  const steps = scenario.steps;
  if (options.processCuts && steps.some((s) => s.kind === 'power-cut')) {
    // The CLI's keeper has neither a dependent state nor system apps: a cut apply would differ.
    const dependent = scenario.initial.dependent.length > 0 || steps.some((s) => s.kind === 'set-dependent');
    if (dependent) reasons.push('a power cut with a dependent state (the apply command has none)');
    if (scenario.config.systemApps.length > 0)
      reasons.push('a power cut with system apps (the apply command has none)');
  }
  steps.forEach((step, index) => {
    const problem = stepProblem(step, steps.slice(index + 1), options);
    if (problem !== undefined) reasons.push(problem);
  });
  return [...new Set(reasons)];
}

/**
 * The scenario without its disk budget: a stock engine has no disk limit to set, but what the scenario
 * does must end the same without one. Drops config.diskLimit and the expectations that measure the
 * budget (diskAtMost, peakDiskAtMost); everything else (images by digest, rows, bytes downloaded,
 * containers) still holds and is compared. The scenario itself when it has no limit.
 */
export function withoutDiskBudget(scenario: CompiledScenario): CompiledScenario {
  if (scenario.config.diskLimit === undefined) return scenario;
  const { diskLimit: _diskLimit, ...config } = scenario.config;
  const { diskAtMost: _diskAtMost, peakDiskAtMost: _peakDiskAtMost, ...expectations } = scenario.expect;
  return { ...scenario, config, expect: expectations };
}

function stepProblem(
  step: ScenarioStep,
  rest: readonly ScenarioStep[],
  options: SupportOptions,
): string | undefined {
  switch (step.kind) {
    case 'power-cut': {
      if (!options.processCuts) return `power cut at ${step.at} (needs the real process with the crash hook)`;
      // The hook arms one cut per process: a run of equal cuts is a cut, then one in each recovery.
      const next = rest.find((s) => !(s.kind === 'power-cut' && sameCut(s, step)));
      if (next?.kind === 'power-cut') return `different power cuts armed at once (${step.at}, ${next.at})`;
      if (next?.kind !== 'apply' || next.intermediate) {
        const before =
          next === undefined
            ? 'the end'
            : next.kind === 'apply'
              ? 'an intermediate apply'
              : `the ${next.kind} step`;
        return `power cut at ${step.at} before ${before} (the apply command cuts only a full apply)`;
      }
      return undefined;
    }
    case 'engine-fault':
      return `injected engine fault (${step.op} ${step.error})`;
    case 'idle-during-pull':
      return 'idle tick in the middle of a pull';
    case 'engine-remove-image':
      return 'the engine loses an image behind the keeper';
    case 'container':
      return step.action === 'lock' || step.action === 'unlock'
        ? `container ${step.action} (a lock is a label; a real container cannot change its labels)`
        : undefined;
    default:
      return undefined;
  }
}

function sameCut(
  a: Extract<ScenarioStep, { kind: 'power-cut' }>,
  b: Extract<ScenarioStep, { kind: 'power-cut' }>,
): boolean {
  return (
    a.at === b.at &&
    a.match === b.match &&
    a.occurrence === b.occurrence &&
    (a.resume ?? true) === (b.resume ?? true)
  );
}

/**
 * Builds and pushes one real image per manifest of the scenario (its registry, and digest references
 * of initial engine images the registry does not serve, which are withdrawn again after the preload),
 * under `<registryHost>/diff/<scenario>/<domain>/<path>`; initial images without any digest reference
 * become load archives. Every repository the scenario names is mapped into that namespace, so even a
 * reference nothing serves resolves on the private registry (404), never on the network.
 */
export async function pushScenarioImages(
  scenario: CompiledScenario,
  registryHost: string,
): Promise<ScenarioMapping> {
  const hex = new Map<string, string>();
  const namespace = `diff/${slug(scenario.name)}`;
  const repositories = new Map(
    repositoriesOf(scenario).map((repository) => [
      repository,
      `${registryHost}/${namespace}/${realPath(repository)}`,
    ]),
  );
  const real = (repository: string): string =>
    repositories.get(repository) ?? `${registryHost}/${namespace}/${realPath(repository)}`;
  const bind = (fake: string, to: string, what: string): void => {
    const from = fake.slice('sha256:'.length);
    const value = to.slice('sha256:'.length);
    const bound = hex.get(from);
    if (bound !== undefined && bound !== value)
      throw new Error(`${what} ${fake} maps to both ${bound} and ${value}`);
    hex.set(from, value);
  };
  const specOf = (layers: readonly Layer[]): HandBuiltLayer[] =>
    layers.map((l) => ({ key: l.digest, bytes: realLayerBytes(l.size) }));
  const push = async (
    repository: string,
    digest: string,
    imageId: string,
    layers: readonly Layer[],
    tags: readonly string[],
  ) => {
    const spec = specOf(layers);
    const pushed = await pushHandBuiltImage(registryHost, {
      repository: real(repository),
      layers: spec,
      idLabel: imageId,
      manifestLabel: digest,
      tags,
    });
    bind(digest, pushed.digest, 'manifest digest');
    bind(imageId, pushed.imageId, 'image ID');
    layers.forEach((layer, i) => bind(layer.digest, builtLayer(spec[i]!).digest, 'layer'));
    return pushed;
  };

  const served = new Set<string>();
  for (const image of scenario.registry) {
    await push(image.repository, image.digest, image.imageId, image.layers, image.tags);
    served.add(`${image.repository}@${image.digest}`);
  }
  const unserved: string[] = [];
  const archives = new Map<string, Buffer>();
  for (const image of scenario.initial.images) {
    for (const ref of image.repoDigests) {
      const digest = digestOf(ref);
      if (served.has(ref) || digest === undefined) continue;
      unserved.push((await push(repositoryOf(ref), digest, image.id, image.layers, [])).digestRef);
      served.add(ref);
    }
    if (image.repoDigests.length === 0) {
      const built = handBuiltImage(specOf(image.layers), image.id);
      bind(image.id, built.imageId, 'image ID');
      image.layers.forEach((layer, i) => bind(layer.digest, built.layers[i]!.digest, 'layer'));
      archives.set(built.imageId, loadArchive(built, []));
    }
  }
  return { hex, repositories, archives, unserved };
}

/** Every repository the scenario mentions anywhere: images, rows, targets, dependents. */
function repositoriesOf(scenario: CompiledScenario): string[] {
  const names: string[] = [
    ...scenario.registry.map((r) => `${r.repository}@${r.digest}`),
    ...scenario.initial.images.flatMap((i) => [...i.repoDigests, ...i.repoTags]),
    ...scenario.initial.rows.map((r) => r.name),
    ...scenario.initial.dependent.map((d) => d.name),
  ];
  const targets = [
    scenario.initial.target,
    ...scenario.steps.map((s) => (s.kind === 'apply' ? s.target : null)),
  ];
  for (const target of targets)
    names.push(
      ...(target?.services ?? []).map((s) => s.name),
      ...(target?.dependent ?? []).map((d) => d.name),
    );
  for (const step of scenario.steps) {
    if (step.kind === 'set-dependent') names.push(...step.images.map((i) => i.name));
    if (step.kind === 'delete-rows' && step.match.name !== undefined) names.push(step.match.name);
  }
  return [...new Set(names.map((name) => repositoryOf(name)))];
}

/** The scenario with every fake digest, image ID, layer and repository replaced by the real one. */
export function rewriteScenario(scenario: CompiledScenario, mapping: ScenarioMapping): CompiledScenario {
  const repositories = [...mapping.repositories].sort((a, b) => b[0].length - a[0].length);
  const rewriteString = (text: string): string => {
    const out = text.replace(/[0-9a-f]{64}/g, (h) => mapping.hex.get(h) ?? h);
    for (const [fake, real] of repositories) {
      if (out === fake) return real;
      if (out.startsWith(`${fake}@`) || out.startsWith(`${fake}:`)) return `${real}${out.slice(fake.length)}`;
    }
    return out;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return rewriteString(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [rewriteString(k), walk(v)]));
    }
    return value;
  };
  return walk(scenario) as CompiledScenario;
}

/**
 * References of the rewritten scenario that would leave the private registry (an image no registry
 * entry defines): the engine would resolve them on the network, so such a scenario is not run.
 */
export function foreignReferences(scenario: CompiledScenario, registryHost: string): string[] {
  const names = new Set<string>();
  const targets = [
    scenario.initial.target,
    ...scenario.steps.map((s) => (s.kind === 'apply' ? s.target : null)),
  ];
  for (const target of targets) {
    for (const image of [...(target?.services ?? []), ...(target?.dependent ?? [])]) names.add(image.name);
  }
  for (const row of scenario.initial.rows) names.add(row.name);
  for (const image of [
    ...scenario.initial.dependent,
    ...scenario.steps.flatMap((s) => (s.kind === 'set-dependent' ? s.images : [])),
  ]) {
    names.add(image.name);
  }
  return [...names].filter((name) => !name.startsWith(`${registryHost}/`));
}

function realPath(repository: string): string {
  const slash = repository.indexOf('/');
  const domain = repository.slice(0, slash).replace(/:/g, '-');
  return `${slug(domain)}/${repository.slice(slash + 1)}`;
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
}
