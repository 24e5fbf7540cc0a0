/**
 * Translates a scenario's symbolic images into real ones. A scenario's digests are sha256 of strings
 * that no registry can serve, so every image of its registry is built by hand (hand-built-images.ts)
 * with one layer per scenario layer (sharing as in the scenario, payloads scaled down 1000x) and pushed
 * to the private registry under a per-scenario namespace; the compiled scenario is then rewritten from
 * the fake digests, image IDs, layers and repositories to the real ones. Both the fakes and the real
 * engine run the rewritten scenario, so their final states compare value for value.
 */
import type { CompiledScenario, ScenarioStep } from '../../../sim/scenario/compiled-scenario.js';
import { LABEL_LOCKED } from '../../../adapters/docker/container-labels.js';
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
  /** Real layer digest (the registry's blob) to the diff ID the engine reports in RootFS.Layers. */
  readonly diffIds: ReadonlyMap<string, string>;
}

/** Scaled-down payload: scenario sizes are megabytes, the real layers need only be distinct. */
export function realLayerBytes(size: number): number {
  return Math.max(1, Math.min(64 * 1024, Math.round(size / 1000)));
}

/**
 * Why the scenario cannot run on a stock Docker engine as it is (empty when it can): deltas, disk
 * budgets, partial layers and injected engine or registry faults exist only in the fakes; update locks
 * are labels, which a real container cannot change after it is created. Power cuts are not a reason:
 * the engine runner cuts a full apply with a real SIGKILLed process and every other cut in-process
 * (engine-scenario-runner.ts), and it runs an idle tick from a pull's progress events.
 */
export function engineSupportOf(scenario: CompiledScenario): string[] {
  const reasons: string[] = [];
  if (scenario.config.deltas || scenario.config.engineDeltas)
    reasons.push('uses deltas (a stock Docker engine has none: the adapter says so and pulls instead)');
  if (scenario.config.diskLimit !== undefined) reasons.push('has a disk limit');
  if (scenario.initial.partialLayers.length > 0)
    reasons.push('starts with partial layers (dockerd discards the layers of a cut pull itself)');
  for (const step of scenario.steps) {
    const problem = stepProblem(step);
    if (problem !== undefined) reasons.push(problem);
  }
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

function stepProblem(step: ScenarioStep): string | undefined {
  switch (step.kind) {
    case 'engine-fault':
      return `injected ${faultProblem(step)}`;
    case 'engine-remove-image':
      return 'the engine loses an image behind the keeper (a stock engine never drops one by itself)';
    case 'container':
      return step.action === 'lock' || step.action === 'unlock'
        ? `container ${step.action} (the update lock is the container label ${LABEL_LOCKED}, and a stock ` +
            'engine cannot change the labels of a created container; a recreated one is another container)'
        : undefined;
    default:
      return undefined;
  }
}

function faultProblem(step: Extract<ScenarioStep, { kind: 'engine-fault' }>): string {
  const what = `${step.op} ${step.error}`;
  switch (step.error) {
    case 'register-layer':
      return (
        `engine fault (${what}): a broken layer store that fails every pull; a stock dockerd cannot be ` +
        'made to fail that way on demand without corrupting its data-root'
      );
    case 'disk-full':
      return `engine fault (${what}): a stock engine has no disk limit to fill`;
    case 'source-missing':
      return `engine fault (${what}): a stock engine has no deltas`;
    default:
      return (
        `registry fault (${what}): the private registry serves every request; the runner has no ` +
        'fault-injecting registry in front of the engine'
      );
  }
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
  const diffIds = new Map<string, string>();
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
    layers.forEach((layer, i) => {
      const built = builtLayer(spec[i]!);
      bind(layer.digest, built.digest, 'layer');
      diffIds.set(built.digest, built.diffId);
    });
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
      image.layers.forEach((layer, i) => {
        bind(layer.digest, built.layers[i]!.digest, 'layer');
        diffIds.set(built.layers[i]!.digest, built.layers[i]!.diffId);
      });
      archives.set(built.imageId, loadArchive(built, []));
    }
  }
  return { hex, repositories, archives, unserved, diffIds };
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
