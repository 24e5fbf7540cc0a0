import { isAbsolute, resolve } from 'node:path';

import { visit } from 'yaml';

import { KeeperError, isKeeperError } from '../../core/errors.js';
import { isMutant } from '../../core/mutants.js';
import type { Container } from '../../core/model/container.js';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import { parseReference } from '../../core/reference/image-reference.js';
import { deriveServiceId, targetImageOf } from '../../core/target/derived-ids.js';
import { describeZodIssue, formatJsonPath, type JsonPath } from '../../core/target/json-path.js';
import { parseJsonText } from '../../core/target/json-text.js';
import {
  buildOwnDependents,
  buildOwnTarget,
  derivedServiceNames,
  parseTargetJson,
  type OwnDependent,
  type TargetBuildContext,
} from '../../core/target/parse-target.js';
import type {
  CompiledScenario,
  ExpectedRow,
  Expectations,
  InitialState,
  RegistryImage,
  ScenarioConfig,
  ScenarioStep,
} from './compiled-scenario.js';
import {
  CONTAINER_ACTIONS,
  scenarioSchema,
  type ContainerSpec,
  type EngineImageSpec,
  type ExpectSpec,
  type ImageSpec,
  type RowSpec,
  type ScenarioSpec,
  type StepSpec,
  type TargetSpec,
} from './scenario-schema.js';
import { configIdOf, isSha256, isSymbol, layerDigestOf, manifestDigestOf, symbolTable } from './symbols.js';
import { lineOfPath, parseYaml, positionOf, positionOfPath, type ParsedYaml } from './yaml-positions.js';

export interface CompileOptions {
  /** Names the source in messages and in `CompiledScenario.file`. */
  readonly file: string;
  /** `file:` targets are resolved against this folder. */
  readonly baseDir: string;
  /** Reads a target JSON file (already resolved to a path) and returns its text. */
  readonly readTextFile: (path: string) => string;
}

export interface ScenarioProblem {
  readonly line: number;
  readonly col: number;
  readonly path: string;
  readonly message: string;
}

/** Default container ID of a service container; `writeScenario` omits IDs equal to it. */
export function defaultContainerId(serviceName: string, appId: number, commit: string): string {
  return `${serviceName}_${appId}_${commit}`;
}

/**
 * Text of a scenario to a CompiledScenario, resolving every symbol. All problems are collected and
 * thrown together as one KeeperError('INVALID_SCENARIO') whose message has one line per problem:
 * `<file>:<line>:<col>: <what is wrong> (at <path>)`.
 */
export function compileScenario(text: string, options: CompileOptions): CompiledScenario {
  try {
    return compileText(text, options);
  } catch (error) {
    // Input nested deeply enough to exhaust the stack (in the YAML parser or the schema): one line.
    if (error instanceof RangeError) {
      throw scenarioError(options.file, [
        { line: 1, col: 1, path: '', message: `nested too deeply to read (${error.message})` },
      ]);
    }
    throw error;
  }
}

function compileText(text: string, options: CompileOptions): CompiledScenario {
  const parsed = parseYaml(text);
  if (parsed.doc.errors.length > 0) {
    throw scenarioError(
      options.file,
      parsed.doc.errors.map((e) => {
        const { line, col } = positionOf(parsed, e.pos[0]);
        const text = oneLine(e.message.split('\n')[0] ?? e.code);
        return {
          line,
          col,
          path: '',
          message: /call stack/i.test(text) ? 'nested too deeply to read' : text,
        };
      }),
    );
  }
  let value: unknown;
  try {
    value = parsed.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // yaml refuses aliases that expand to too much (an alias bomb) with a ReferenceError.
    const { line, col } = positionOf(parsed, firstAliasOffset(parsed) ?? 0);
    const message = /excessive alias count/i.test((error as Error).message)
      ? `YAML aliases expand to too much data (more than ${MAX_ALIAS_COUNT} alias expansions)`
      : oneLine((error as Error).message);
    throw scenarioError(options.file, [{ line, col, path: '', message }]);
  }
  const result = scenarioSchema.safeParse(value, { reportInput: true });
  if (!result.success) {
    const hint = targetFileHint(value);
    if (hint !== undefined) throw scenarioError(options.file, [{ line: 1, col: 1, path: '', message: hint }]);
    throw scenarioError(
      options.file,
      result.error.issues.flatMap(describeZodIssue).map((p) => locate(parsed, p.path, p.message, p.atKey)),
    );
  }
  return new Compiler(parsed, options).compile(result.data);
}

/** Alias expansions a scenario may make while it is read; a few shared lists need far fewer. */
const MAX_ALIAS_COUNT = 1000;

function firstAliasOffset(parsed: ParsedYaml): number | undefined {
  let offset: number | undefined;
  visit(parsed.doc, {
    Alias(_key, node) {
      offset = node.range?.[0];
      return visit.BREAK;
    },
  });
  return offset;
}

/**
 * A target-state file given where a scenario is expected: it has no `name` and the shape of a target
 * (our `apps`/`dependent`, balena v2 `local`, or balena v3 device UUIDs holding `apps`).
 */
function targetFileHint(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || 'name' in value)
    return undefined;
  const keys = Object.keys(value);
  const record = value as Record<string, unknown>;
  const v3 =
    keys.length > 0 &&
    keys.every((k) => typeof record[k] === 'object' && record[k] !== null && 'apps' in (record[k] as object));
  if (!v3 && !keys.includes('apps') && !keys.includes('local') && !keys.includes('dependent'))
    return undefined;
  return "this looks like a target file, not a scenario; use image-keeper apply, or reference it from a scenario's apply: {file: ...}";
}

function locate(parsed: ParsedYaml, path: JsonPath, message: string, atKey: boolean): ScenarioProblem {
  const { line, col } = positionOfPath(parsed, path, atKey);
  return { line, col, path: formatJsonPath(path), message };
}

function scenarioError(file: string, problems: readonly ScenarioProblem[]): KeeperError {
  const sorted = [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
  // A binary or wildly wrong file yields a flood: keep messages short and the first twenty problems.
  const clip = (text: string): string => (text.length > 400 ? `${text.slice(0, 397)}...` : text);
  const lines = sorted
    .slice(0, 20)
    .map(
      (p) => `${file}:${p.line}:${p.col}: ${clip(p.message)}${p.path === '' ? '' : ` (at ${clip(p.path)})`}`,
    );
  if (sorted.length > 20) lines.push(`${file}: ... and ${sorted.length - 20} more problems`);
  return new KeeperError('INVALID_SCENARIO', lines.join('\n'), { details: { file, problems: sorted } });
}

interface ImageDef {
  readonly key: string;
  readonly repository: string;
  readonly digest: string;
  imageId: string;
  readonly layers: readonly Layer[];
  readonly tags: readonly string[];
}

class Compiler {
  private readonly problems: ScenarioProblem[] = [];
  /** sha256 value -> the symbol that derived it (explicit sha256 values are not symbols). */
  private readonly derived = new Map<string, string>();
  private readonly layers = new Map<string, Layer>();
  private readonly images = new Map<string, ImageDef>();
  /** Symbols used as `id:` that are not image symbols themselves. */
  private readonly idSymbols = new Set<string>();
  private readonly cyclic = new Set<string>();
  /** Service names whose serviceId is derived, with where, to catch two names deriving one ID. */
  private readonly derivedServices: { name: string; path: JsonPath }[] = [];
  private readonly targetContext: TargetBuildContext = {
    resolveImage: (image, path) => this.reference(image, path),
    report: (path, message) => this.problem(path, message),
  };

  constructor(
    private readonly parsed: ParsedYaml,
    private readonly options: CompileOptions,
  ) {}

  compile(spec: ScenarioSpec): CompiledScenario {
    this.defineLayers(spec.layers ?? {});
    this.defineImages(spec.images ?? {});
    const config = this.config(spec);
    const registry = this.registry(spec.registry);
    const initial = this.initial(spec);
    const steps = (spec.steps ?? []).flatMap((step, i) => this.step(step, ['steps', i]) ?? []);
    const expect = this.expectations(spec.expect ?? {});
    const catches = this.catches(spec.catches);
    this.checkServiceIds();
    if (this.problems.length > 0) throw scenarioError(this.options.file, this.problems);

    const content = {
      name: spec.name,
      description: spec.description ?? '',
      ...(spec.source !== undefined ? { source: spec.source } : {}),
      ...(spec.id !== undefined ? { id: spec.id } : {}),
      ...(spec.faultClass !== undefined ? { faultClass: spec.faultClass } : {}),
      ...(catches !== undefined ? { catches } : {}),
      config,
      registry,
      initial,
      steps,
      ...(spec.cutAtCalls !== undefined && spec.cutAtCalls.length > 0 ? { cutAtCalls: spec.cutAtCalls } : {}),
      expect,
    };
    return { file: this.options.file, ...content, symbols: symbolTable(content, this.derived) };
  }

  private problem(path: JsonPath, message: string, atKey = false): void {
    this.problems.push(locate(this.parsed, path, message, atKey));
  }

  /** `catches` must name mutants of core/mutants.ts, each once. */
  private catches(names: readonly string[] | undefined): string[] | undefined {
    if (names === undefined) return undefined;
    const seen = new Set<string>();
    names.forEach((mutant, i) => {
      if (!isMutant(mutant)) this.problem(['catches', i], `unknown mutant '${mutant}' (see core/mutants.ts)`);
      else if (seen.has(mutant)) this.problem(['catches', i], `mutant '${mutant}' is listed twice`);
      seen.add(mutant);
    });
    return [...names];
  }

  // ---- symbol tables ----

  private defineLayers(layers: Readonly<Record<string, number>>): void {
    for (const [layerName, size] of Object.entries(layers)) {
      let digest: string;
      if (isSha256(layerName)) digest = layerName;
      else if (isSymbol(layerName)) {
        digest = layerDigestOf(layerName);
        this.derived.set(digest, layerName);
      } else {
        this.problem(
          ['layers', layerName],
          `layer name '${layerName}' must be a symbol or a full sha256 digest`,
          true,
        );
        continue;
      }
      this.layers.set(layerName, { digest, size });
    }
  }

  private defineImages(images: Readonly<Record<string, ImageSpec>>): void {
    const specs = Object.entries(images);
    for (const [key, spec] of specs) {
      const path = ['images', key];
      if (!isSymbol(key)) {
        this.problem(
          path,
          `image symbol '${key}' must start with a letter or '_' and use letters, digits, '_', '.', '-'`,
          true,
        );
        continue;
      }
      const repository = this.repository(spec.repo, [...path, 'repo']);
      let digest: string;
      if (spec.digest === undefined) {
        digest = manifestDigestOf(key);
        this.derived.set(digest, key);
      } else {
        if (!isSha256(spec.digest)) this.problem([...path, 'digest'], `digest must be a full sha256 digest`);
        digest = spec.digest;
      }
      const tags = (spec.tags ?? []).filter((tag, t) =>
        this.validTag(repository ?? 'x.invalid/x', tag, [...path, 'tags', t]),
      );
      const layers = this.layerList(spec.layers ?? [], [...path, 'layers']);
      this.images.set(key, {
        key,
        repository: repository ?? 'x.invalid/x',
        digest,
        imageId: '',
        layers,
        tags,
      });
    }
    // IDs after every image is known: `id: x` may name an image defined further down.
    for (const [key, spec] of specs) {
      const def = this.images.get(key);
      if (def) def.imageId = this.entryImageId(key, spec, images, []);
    }
    const byId = new Map<string, ImageDef>();
    for (const def of this.images.values()) {
      const first = byId.get(def.imageId);
      if (!first) byId.set(def.imageId, def);
      else if (!sameLayers(first.layers, def.layers)) {
        this.problem(
          ['images', def.key, 'layers'],
          `image '${def.key}' has the image ID of '${first.key}' but different layers`,
        );
      }
    }
  }

  private entryImageId(
    key: string,
    spec: ImageSpec | undefined,
    images: Readonly<Record<string, ImageSpec>>,
    stack: readonly string[],
  ): string {
    const id = spec?.id;
    if (id === undefined) {
      const value = configIdOf(key);
      this.derived.set(value, key);
      return value;
    }
    if (isSha256(id)) return id;
    if (Object.hasOwn(images, id) && this.images.has(id)) {
      if (stack.includes(id) || id === key) {
        // Report a cycle once, not once per member.
        const members = [...stack, key];
        if (!members.some((m) => this.cyclic.has(m))) {
          this.problem(
            ['images', key, 'id'],
            `image IDs of ${[...members, id].map((s) => `'${s}'`).join(' -> ')} form a cycle`,
          );
        }
        members.forEach((m) => this.cyclic.add(m));
        return configIdOf(id);
      }
      return this.entryImageId(id, images[id], images, [...stack, key]);
    }
    if (isSymbol(id)) {
      this.idSymbols.add(id);
      const value = configIdOf(id);
      this.derived.set(value, id);
      return value;
    }
    this.problem(['images', key, 'id'], `id must be a symbol or a full sha256 image ID`);
    return configIdOf(id);
  }

  private repository(repo: string, path: JsonPath): string | undefined {
    try {
      const ref = parseReference(repo);
      if (ref.tag !== undefined || ref.digest !== undefined) {
        this.problem(path, `repo must be a repository without tag or digest (put tags in 'tags')`);
        return undefined;
      }
      return ref.repository;
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_REFERENCE')) throw error;
      this.problem(path, error.message);
      return undefined;
    }
  }

  private validTag(repository: string, tag: string, path: JsonPath): boolean {
    try {
      parseReference(`${repository}:${tag}`);
      return true;
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_REFERENCE')) throw error;
      this.problem(path, `invalid tag '${tag}'`);
      return false;
    }
  }

  private layerList(names: readonly string[], path: JsonPath): Layer[] {
    return names.flatMap((layerName, i) => {
      const layer = this.layers.get(layerName);
      if (!layer) this.problem([...path, i], `layer '${layerName}' is not defined in layers`);
      return layer ?? [];
    });
  }

  /** An image symbol or a full reference, as a normalised reference. */
  private reference(value: string, path: JsonPath): string | undefined {
    const def = this.images.get(value);
    if (def) return `${def.repository}@${def.digest}`;
    if (!/[/:@]/.test(value)) {
      this.problem(path, `image '${value}' is not defined in images`);
      return undefined;
    }
    try {
      return parseReference(value).normalized;
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_REFERENCE')) throw error;
      this.problem(path, error.message);
      return undefined;
    }
  }

  /** An image symbol (its image ID), an image-ID symbol, or a full `sha256:` image ID. */
  private imageId(value: string, path: JsonPath): string | undefined {
    const def = this.images.get(value);
    if (def) return def.imageId;
    if (this.idSymbols.has(value)) return configIdOf(value);
    if (isSha256(value)) return value;
    this.problem(path, `image '${value}' is not defined in images`);
    return undefined;
  }

  private imageIds(values: readonly string[] | undefined, path: JsonPath): string[] {
    return (values ?? []).flatMap((v, i) => this.imageId(v, [...path, i]) ?? []);
  }

  private serviceId(serviceName: string, explicit: number | undefined, path: JsonPath): number {
    if (explicit !== undefined) return explicit;
    this.derivedServices.push({ name: serviceName, path });
    return deriveServiceId(serviceName);
  }

  private checkServiceIds(): void {
    const seen = new Map<number, string>();
    for (const { name, path } of this.derivedServices) {
      const id = deriveServiceId(name);
      const other = seen.get(id);
      if (other !== undefined && other !== name) {
        this.problem(
          path,
          `services '${other}' and '${name}' derive the same serviceId ${id}; give one an explicit serviceId`,
        );
      }
      seen.set(id, name);
    }
  }

  // ---- sections ----

  private config(spec: ScenarioSpec): ScenarioConfig {
    const c = spec.config ?? {};
    return {
      deltas: c.deltas ?? false,
      engineDeltas: c.engineDeltas ?? false,
      ...(c.diskLimit !== undefined ? { diskLimit: c.diskLimit } : {}),
      systemApps: c.systemApps ?? [],
    };
  }

  private registry(symbols: readonly string[] | undefined): RegistryImage[] {
    const listed = symbols ?? [...this.images.keys()];
    const seen = new Set<string>();
    return listed.flatMap((symbol, i) => {
      const def = this.images.get(symbol);
      if (!def) {
        this.problem(['registry', i], `image '${symbol}' is not defined in images`);
        return [];
      }
      if (seen.has(symbol)) {
        this.problem(['registry', i], `image '${symbol}' is listed twice`);
        return [];
      }
      seen.add(symbol);
      return [
        {
          repository: def.repository,
          digest: def.digest,
          imageId: def.imageId,
          layers: def.layers,
          tags: def.tags,
        },
      ];
    });
  }

  private initial(spec: ScenarioSpec): InitialState {
    const initial = spec.initial ?? {};
    const base = ['initial'];
    // Each compiled entry keeps the index of its source entry, so a problem points at the right line
    // even when an earlier entry had an error (and compiled to nothing).
    const rowEntries = (initial.rows ?? []).flatMap((spec, i) => {
      const row = this.row(spec, i, [...base, 'rows', i]);
      return row ? [{ value: row, index: i }] : [];
    });
    this.unique(
      rowEntries.map((r) => ({ key: r.value.id, index: r.index })),
      (i) => [...base, 'rows', i],
      'row id',
    );
    const containerEntries = (initial.containers ?? []).flatMap((spec, i) => {
      const container = this.container(spec, [...base, 'containers', i]);
      return container ? [{ value: container, index: i }] : [];
    });
    this.unique(
      containerEntries.map((c) => ({ key: c.value.id, index: c.index })),
      (i) => [...base, 'containers', i],
      'container id',
    );
    const rows = rowEntries.map((r) => r.value);
    const containers = containerEntries.map((c) => c.value);
    return {
      images: this.engineImages(initial.engine?.images ?? [], [...base, 'engine', 'images']),
      partialLayers: this.layerList(initial.engine?.partialLayers ?? [], [
        ...base,
        'engine',
        'partialLayers',
      ]),
      rows,
      containers,
      target:
        initial.target === undefined ? null : (this.target(initial.target, [...base, 'target']) ?? null),
      dependent: this.dependents(initial.dependent ?? [], [...base, 'dependent']),
    };
  }

  /** Reports each key used a second time, at the source entry (`index`) that uses it again. */
  private unique<T>(
    entries: readonly { readonly key: T; readonly index: number }[],
    pathOf: (index: number) => JsonPath,
    what: string,
  ): void {
    const seen = new Set<T>();
    for (const { key, index } of entries) {
      if (seen.has(key)) this.problem(pathOf(index), `${what} ${String(key)} is used twice`);
      seen.add(key);
    }
  }

  private engineImages(entries: readonly EngineImageSpec[], base: JsonPath): EngineImage[] {
    const byId = new Map<string, { image: EngineImage; index: number }>();
    entries.forEach((entry, i) => {
      const image = this.engineImage(entry, [...base, i]);
      if (!image) return;
      const earlier = byId.get(image.id);
      if (!earlier) {
        byId.set(image.id, { image, index: i });
        return;
      }
      // One engine image per ID: a second entry with the same ID adds its references to the first.
      if (!sameLayers(earlier.image.layers, image.layers)) {
        this.problem(
          [...base, i],
          `engine image has the image ID of entry ${earlier.index} but different layers`,
        );
        return;
      }
      earlier.image = {
        ...earlier.image,
        repoTags: union(earlier.image.repoTags, image.repoTags),
        repoDigests: union(earlier.image.repoDigests, image.repoDigests),
      };
    });
    return [...byId.values()].map((e) => e.image);
  }

  private engineImage(entry: EngineImageSpec, path: JsonPath): EngineImage | undefined {
    const raw =
      entry.id !== undefined ||
      entry.layers !== undefined ||
      entry.repoTags !== undefined ||
      entry.repoDigests !== undefined;
    if (entry.image !== undefined) {
      if (raw) {
        this.problem(
          path,
          `use either 'image' (with 'references') or a raw 'id'/'layers'/'repoTags'/'repoDigests', not both`,
        );
        return undefined;
      }
      const def = this.images.get(entry.image);
      if (!def) {
        this.problem([...path, 'image'], `image '${entry.image}' is not defined in images`);
        return undefined;
      }
      return engineImageOf(def, entry.references ?? 'digest');
    }
    if (entry.references !== undefined) {
      this.problem([...path, 'references'], `'references' needs 'image'`);
      return undefined;
    }
    if (entry.id === undefined) {
      this.problem(path, `missing required key 'image' (or 'id' for a raw engine image)`);
      return undefined;
    }
    const id = this.imageId(entry.id, [...path, 'id']);
    const layers = this.layerList(entry.layers ?? [], [...path, 'layers']);
    const repoTags = (entry.repoTags ?? []).flatMap(
      (t, i) => this.engineReference(t, 'tag', [...path, 'repoTags', i]) ?? [],
    );
    const repoDigests = (entry.repoDigests ?? []).flatMap(
      (d, i) => this.engineReference(d, 'digest', [...path, 'repoDigests', i]) ?? [],
    );
    if (id === undefined) return undefined;
    return { id, repoTags, repoDigests, layers, size: sizeOf(layers) };
  }

  private engineReference(value: string, kind: 'tag' | 'digest', path: JsonPath): string | undefined {
    try {
      const ref = parseReference(value);
      if (kind === 'digest' ? ref.digest === undefined : ref.digest !== undefined) {
        this.problem(
          path,
          kind === 'digest' ? `'${value}' has no digest` : `'${value}' must be repo:tag, without digest`,
        );
        return undefined;
      }
      return ref.normalized;
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_REFERENCE')) throw error;
      this.problem(path, error.message);
      return undefined;
    }
  }

  private row(spec: RowSpec, index: number, path: JsonPath): ImageRow | undefined {
    const name = this.reference(spec.image, [...path, 'image']);
    const dockerImageId = this.rowImageId(spec.image, spec.id, path);
    const serviceId = this.serviceId(spec.service, spec.serviceId, [...path, 'service']);
    if (name === undefined || dockerImageId === undefined) return undefined;
    return { id: spec.rowId ?? index + 1, ...targetImageOf(name, spec, serviceId), dockerImageId };
  }

  /** `id` of a row: null, explicit, or by default the ID of the row's image symbol. */
  private rowImageId(
    image: string,
    id: string | null | undefined,
    path: JsonPath,
  ): string | null | undefined {
    if (id === null) return null;
    if (id !== undefined) return this.imageId(id, [...path, 'id']);
    const def = this.images.get(image);
    if (def) return def.imageId;
    // An unknown symbol is already reported by the reference; only a full reference needs an explicit id.
    if (/[/:@]/.test(image))
      this.problem(path, `missing required key 'id' (needed when image is a full reference)`);
    return undefined;
  }

  private container(spec: ContainerSpec, path: JsonPath): Container | undefined {
    const imageId = this.imageId(spec.image, [...path, 'image']);
    const running = spec.running ?? true;
    if (spec.foreign === true) {
      const extra = (['service', 'app', 'serviceId', 'commit', 'locked'] as const).filter(
        (k) => spec[k] !== undefined,
      );
      if (extra.length > 0)
        this.problem([...path, extra[0] ?? 'foreign'], `a foreign container has no '${extra[0]}'`, true);
      if (spec.id === undefined)
        this.problem(path, `missing required key 'id' (a foreign container needs one)`);
      if (imageId === undefined || spec.id === undefined || extra.length > 0) return undefined;
      return { id: spec.id, imageId, running };
    }
    const missing = (['service', 'app', 'commit'] as const).filter((k) => spec[k] === undefined);
    if (missing.length > 0) {
      this.problem(path, `missing required key '${missing[0]}' (or set foreign: true)`);
      return undefined;
    }
    const serviceName = spec.service ?? '';
    const appId = spec.app ?? 0;
    const commit = spec.commit ?? '';
    const serviceId = this.serviceId(serviceName, spec.serviceId, [...path, 'service']);
    if (imageId === undefined) return undefined;
    return {
      id: spec.id ?? defaultContainerId(serviceName, appId, commit),
      imageId,
      running,
      service: {
        appId,
        serviceId,
        serviceName,
        commit,
        ...(spec.locked !== undefined ? { locked: spec.locked } : {}),
      },
    };
  }

  private target(spec: TargetSpec, path: JsonPath): Target | undefined {
    if (spec.file !== undefined) {
      if (spec.apps !== undefined || spec.dependent !== undefined) {
        this.problem([...path, 'file'], `'file' cannot be combined with 'apps' or 'dependent'`, true);
        return undefined;
      }
      return this.targetFile(spec.file, [...path, 'file']);
    }
    for (const name of derivedServiceNames(spec)) this.derivedServices.push({ name, path });
    const before = this.problems.length;
    const target = buildOwnTarget(spec, this.targetContext, path);
    return this.problems.length === before ? target : undefined;
  }

  private targetFile(file: string, path: JsonPath): Target | undefined {
    const full = isAbsolute(file) ? file : resolve(this.options.baseDir, file);
    let text: string;
    try {
      text = this.options.readTextFile(full);
    } catch (error) {
      this.problem(path, `cannot read target file '${file}': ${oneLine((error as Error).message)}`);
      return undefined;
    }
    try {
      return parseTargetJson(parseJsonText(text, file), file);
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_TARGET')) throw error;
      this.problem(path, `invalid target file ${error.message}`);
      return undefined;
    }
  }

  private dependents(specs: readonly OwnDependent[], path: JsonPath): TargetImage[] {
    specs.forEach((d, i) => {
      if (d.serviceId === undefined)
        this.derivedServices.push({ name: d.service, path: [...path, i, 'service'] });
    });
    return buildOwnDependents(specs, this.targetContext, path);
  }

  // ---- steps ----

  private step(spec: StepSpec, path: JsonPath): ScenarioStep | undefined {
    const kinds = Object.entries(spec).filter(([, v]) => v !== undefined);
    const first = kinds[0];
    if (kinds.length !== 1 || first === undefined) {
      const found = kinds.map(([k]) => k).join(', ');
      this.problem(path, kinds.length === 0 ? 'empty step' : `a step has exactly one kind, found ${found}`);
      return undefined;
    }
    const kind = first[0];
    const at = [...path, kind];
    const line = lineOfPath(this.parsed, path);
    const withLine = (step: ScenarioStep): ScenarioStep => (line === undefined ? step : { ...step, line });
    switch (kind) {
      case 'apply': {
        const apply = spec.apply ?? {};
        if (apply.intermediate !== undefined) {
          if (apply.apps !== undefined || apply.dependent !== undefined || apply.file !== undefined) {
            this.problem([...at, 'intermediate'], `'intermediate' cannot be combined with other keys`, true);
            return undefined;
          }
          const target = this.target(apply.intermediate, [...at, 'intermediate']);
          return target && withLine({ kind: 'apply', target, intermediate: true });
        }
        const target = this.target(apply, at);
        return target && withLine({ kind: 'apply', target, intermediate: false });
      }
      case 'power-cut': {
        const cut = spec['power-cut'];
        if (!cut) return undefined;
        if (cut.match !== undefined && cut.matchText !== undefined) {
          this.problem([...at, 'matchText'], `use either 'match' or 'matchText'`, true);
          return undefined;
        }
        const match =
          cut.matchText ?? (cut.match === undefined ? undefined : this.cutMatch(cut.match, cut.at));
        return withLine({
          kind: 'power-cut',
          at: cut.at,
          ...(match !== undefined ? { match } : {}),
          occurrence: cut.occurrence ?? 1,
          ...(cut.resume !== undefined ? { resume: cut.resume } : {}),
        });
      }
      case 'restart':
        return withLine({ kind: 'restart' });
      case 'idle':
        return withLine({ kind: 'idle' });
      case 'wipe-db':
        return withLine({ kind: 'wipe-db' });
      case 'idle-during-pull': {
        const s = spec['idle-during-pull'] ?? {};
        // No image: '' matches whichever pull is in flight.
        const ref = s.image === undefined ? '' : this.reference(s.image, [...at, 'image']);
        return ref === undefined
          ? undefined
          : withLine({ kind: 'idle-during-pull', ref, afterLayers: s.afterLayers ?? 0 });
      }
      case 'container': {
        const actions = Object.entries(spec.container ?? {}).filter(([, v]) => v !== undefined);
        const entry = actions[0];
        if (actions.length !== 1 || entry === undefined) {
          this.problem(at, `give exactly one of stop, start, remove, lock, unlock`);
          return undefined;
        }
        const [action, m] = entry as [
          (typeof CONTAINER_ACTIONS)[number],
          { service?: string; app?: number; id?: string },
        ];
        const match = {
          ...(m.service !== undefined ? { serviceName: m.service } : {}),
          ...(m.app !== undefined ? { appId: m.app } : {}),
          ...(m.id !== undefined ? { containerId: m.id } : {}),
        };
        return withLine({ kind: 'container', action, match });
      }
      case 'add-container': {
        const s = spec['add-container'];
        const container = s && this.container(s, at);
        return container && withLine({ kind: 'add-container', container });
      }
      case 'delete-rows': {
        const s = spec['delete-rows'] ?? {};
        const name = s.image === undefined ? undefined : this.reference(s.image, [...at, 'image']);
        if (s.image !== undefined && name === undefined) return undefined;
        const match = {
          ...(name !== undefined ? { name } : {}),
          ...(s.service !== undefined ? { serviceName: s.service } : {}),
        };
        return withLine({ kind: 'delete-rows', match });
      }
      case 'set-dependent':
        return withLine({ kind: 'set-dependent', images: this.dependents(spec['set-dependent'] ?? [], at) });
      case 'engine-fault': {
        const s = spec['engine-fault'];
        if (!s) return undefined;
        const ref = s.image === undefined ? undefined : this.reference(s.image, [...at, 'image']);
        if (s.image !== undefined && ref === undefined) return undefined;
        return withLine({
          kind: 'engine-fault',
          op: s.op,
          error: s.error,
          times: s.times ?? 1,
          ...(ref !== undefined ? { ref } : {}),
        });
      }
      case 'engine-remove-image': {
        const imageId = this.imageId(spec['engine-remove-image'] ?? '', at);
        return imageId === undefined ? undefined : withLine({ kind: 'engine-remove-image', imageId });
      }
      default:
        this.problem(at, `unknown step '${kind}'`, true);
        return undefined;
    }
  }

  /**
   * A symbol in `match` stands for what the core puts in that crash point's detail: the image ID for
   * idle cleanup (which works on engine images), the manifest digest everywhere else (details name
   * references, and the digest is a substring of `repo@digest`). Anything else is a literal substring.
   */
  private cutMatch(match: string, at: string): string {
    const def = this.images.get(match);
    if (def) return at === 'mid-idle-cleanup' ? def.imageId : def.digest;
    if (this.idSymbols.has(match)) return configIdOf(match);
    return match;
  }

  // ---- expectations ----

  private expectations(spec: ExpectSpec): Expectations {
    const base = ['expect'];
    const rows = spec.rows?.flatMap((row, i) => this.expectedRow(row, [...base, 'rows', i]) ?? []);
    const containers = spec.containers?.flatMap((c, i) => {
      const imageId = this.imageId(c.image, [...base, 'containers', i, 'image']);
      if (imageId === undefined) return [];
      return [
        { serviceName: c.service, imageId, ...(c.running !== undefined ? { running: c.running } : {}) },
      ];
    });
    return {
      present: this.imageIds(spec.present, [...base, 'present']),
      absent: this.imageIds(spec.absent, [...base, 'absent']),
      ...(rows !== undefined ? { rows } : {}),
      ...(spec.bytesDownloadedAtMost !== undefined
        ? { bytesDownloadedAtMost: spec.bytesDownloadedAtMost }
        : {}),
      ...(spec.diskAtMost !== undefined ? { diskAtMost: spec.diskAtMost } : {}),
      ...(spec.peakDiskAtMost !== undefined ? { peakDiskAtMost: spec.peakDiskAtMost } : {}),
      noDangling: spec.noDangling ?? true,
      converged: spec.converged ?? true,
      ...(containers !== undefined ? { containers } : {}),
      alwaysPresent: this.imageIds(spec.alwaysPresent, [...base, 'alwaysPresent']),
      neverRemoved: this.imageIds(spec.neverRemoved, [...base, 'neverRemoved']),
    };
  }

  private expectedRow(
    spec: NonNullable<ExpectSpec['rows']>[number],
    path: JsonPath,
  ): ExpectedRow | undefined {
    const name = this.reference(spec.image, [...path, 'image']);
    const dockerImageId = this.rowImageId(spec.image, spec.id, path);
    if (name === undefined || dockerImageId === undefined) return undefined;
    return { name, appId: spec.app, serviceName: spec.service, commit: spec.commit, dockerImageId };
  }
}

/** The engine image an image symbol gives with the chosen references (see docs/scenario-format.md). */
export function engineImageOf(
  def: Pick<ImageDef, 'repository' | 'digest' | 'imageId' | 'layers' | 'tags'>,
  mode: 'digest' | 'tag' | 'both' | 'none',
): EngineImage {
  const tags = def.tags.length > 0 ? def.tags : ['latest'];
  return {
    id: def.imageId,
    repoTags: mode === 'tag' || mode === 'both' ? tags.map((t) => `${def.repository}:${t}`) : [],
    repoDigests: mode === 'digest' || mode === 'both' ? [`${def.repository}@${def.digest}`] : [],
    layers: def.layers,
    size: sizeOf(def.layers),
  };
}

function sizeOf(layers: readonly Layer[]): number {
  return layers.reduce((sum, l) => sum + l.size, 0);
}

function sameLayers(a: readonly Layer[], b: readonly Layer[]): boolean {
  return a.length === b.length && a.every((l, i) => l.digest === b[i]?.digest);
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}

/** Messages of file errors and the like as one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
