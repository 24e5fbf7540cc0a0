import { Document, isMap, isPair, isScalar, isSeq, visit, type Node } from 'yaml';

import type { Container } from '../../core/model/container.js';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import { parseReference } from '../../core/reference/image-reference.js';
import { deriveImageId, deriveReleaseId, deriveServiceId } from '../../core/target/derived-ids.js';
import type { CompiledScenario, ExpectedRow, ScenarioStep } from './compiled-scenario.js';
import { defaultContainerId, engineImageOf } from './compile-scenario.js';
import { REFERENCE_MODES } from './scenario-schema.js';
import { configIdOf, isSymbol, layerDigestOf, manifestDigestOf, sha256Values } from './symbols.js';

/**
 * A self-contained YAML scenario for a compiled one (to save a simulator failure as a file). Symbols
 * from `compiled.symbols` are used wherever they derive exactly the compiled value; everything else is
 * written out in full (full references, `sha256:` IDs and digests, raw engine images). Loading the text
 * gives back an equal CompiledScenario, `file` and step `line`s aside.
 */
export function writeScenario(compiled: CompiledScenario): string {
  return new ScenarioWriter(compiled).write();
}

interface Entry {
  readonly key: string;
  readonly repository: string;
  readonly digest: string;
  readonly imageId: string;
  readonly layers: readonly Layer[];
  readonly tags: readonly string[];
  /** `id:` as written; undefined when the key derives the image ID. */
  idField?: string;
}

/** Placeholder repository for images known only by a symbol (nothing pulls or lists them). */
const UNUSED_REPOSITORY = 'sim.invalid/unused';

type Plain = string | number | boolean | null | Plain[] | { [key: string]: Plain };

class ScenarioWriter {
  private readonly symbols: ReadonlyMap<string, string>;
  private readonly layerNames = new Map<string, string>();
  private readonly layersOut: Record<string, number> = {};
  private readonly entries = new Map<string, Entry>();
  private readonly reserved: Set<string>;
  private invented = 0;

  constructor(private readonly c: CompiledScenario) {
    this.symbols = new Map(Object.entries(c.symbols));
    this.reserved = new Set(Object.values(c.symbols));
  }

  write(): string {
    const c = this.c;
    this.defineLayers();
    const registry = c.registry.map(
      (r) =>
        this.newEntry({
          repository: r.repository,
          digest: r.digest,
          imageId: r.imageId,
          layers: r.layers,
          tags: r.tags,
        }).key,
    );
    const engineImages = c.initial.images.map((image) => this.engineImageEntry(image));
    this.defineSymbolOnlyImages();
    this.chooseIdFields();
    this.declareIdSymbols();

    const doc: Record<string, Plain> = { name: c.name };
    if (c.description !== '') doc['description'] = c.description;
    if (c.source !== undefined) doc['source'] = c.source;
    if (c.id !== undefined) doc['id'] = c.id;
    if (c.faultClass !== undefined) doc['faultClass'] = c.faultClass;
    if (c.catches !== undefined) doc['catches'] = [...c.catches];
    const config = this.config();
    if (Object.keys(config).length > 0) doc['config'] = config;
    if (Object.keys(this.layersOut).length > 0) doc['layers'] = this.layersOut;
    if (this.entries.size > 0) doc['images'] = this.imagesOut();
    doc['registry'] = registry;
    const initial = this.initial(
      engineImages.flatMap((e) => (typeof e === 'function' ? [e()] : isParts(e) ? e.parts : [e])),
    );
    if (Object.keys(initial).length > 0) doc['initial'] = initial;
    if (c.steps.length > 0) doc['steps'] = c.steps.map((s) => this.step(s));
    if (c.cutAtCalls !== undefined && c.cutAtCalls.length > 0) doc['cutAtCalls'] = [...c.cutAtCalls];
    const expect = this.expectations();
    if (Object.keys(expect).length > 0) doc['expect'] = expect;
    return render(doc, c.file);
  }

  // ---- definitions ----

  private defineLayers(): void {
    const c = this.c;
    const all = [
      ...c.registry.flatMap((r) => r.layers),
      ...c.initial.images.flatMap((i) => i.layers),
      ...c.initial.partialLayers,
    ];
    for (const layer of all) {
      if (this.layerNames.has(layer.digest)) continue;
      const symbol = this.symbols.get(layer.digest);
      const name =
        symbol !== undefined && isSymbol(symbol) && layerDigestOf(symbol) === layer.digest
          ? symbol
          : layer.digest;
      this.layerNames.set(layer.digest, name);
      this.layersOut[name] = layer.size;
    }
    // Layer symbols the content mentions elsewhere (a match text, say) must stay defined.
    for (const [value, symbol] of this.symbols) {
      if (isSymbol(symbol) && layerDigestOf(symbol) === value && !this.layerNames.has(value)) {
        this.layerNames.set(value, symbol);
        this.layersOut[symbol] = 0;
      }
    }
  }

  private newEntry(data: Omit<Entry, 'key' | 'idField'>, forcedKey?: string): Entry {
    const symbol = this.symbols.get(data.digest);
    const key =
      forcedKey ??
      (symbol !== undefined &&
      isSymbol(symbol) &&
      manifestDigestOf(symbol) === data.digest &&
      !this.entries.has(symbol)
        ? symbol
        : this.inventKey());
    const entry: Entry = { key, ...data };
    this.entries.set(key, entry);
    return entry;
  }

  private inventKey(): string {
    for (;;) {
      const key = `image-${++this.invented}`;
      if (!this.entries.has(key) && !this.reserved.has(key)) return key;
    }
  }

  /** An engine image as `symbol`, `{ image, references }`, or (deferred until IDs are written) a raw form. */
  private engineImageEntry(image: EngineImage): Plain | { parts: Plain[] } | (() => Plain) {
    for (const entry of this.entries.values()) {
      for (const mode of REFERENCE_MODES) {
        if (sameJson(engineImageOf(entry, mode), image))
          return mode === 'digest' ? entry.key : { image: entry.key, references: mode };
      }
    }
    const merged = this.mergedEntries(image);
    if (merged) return { parts: merged };
    const candidate = this.candidateEntry(image);
    if (candidate) {
      const mode = candidate.tags.length > 0 ? 'both' : 'digest';
      if (sameJson(engineImageOf(candidate, mode), image)) {
        const entry = this.newEntry(candidate);
        return mode === 'digest' ? entry.key : { image: entry.key, references: mode };
      }
    }
    return () => {
      const raw: Record<string, Plain> = {
        id: this.imageIdRef(image.id),
        layers: this.layerList(image.layers),
      };
      if (image.repoTags.length > 0) raw['repoTags'] = [...image.repoTags];
      if (image.repoDigests.length > 0) raw['repoDigests'] = [...image.repoDigests];
      return raw;
    };
  }

  /**
   * Several symbols that share one image ID (the loader merges their references into one engine
   * image): each with the widest references mode that stays inside the image's references.
   */
  private mergedEntries(image: EngineImage): Plain[] | undefined {
    const refs = new Set([...image.repoTags, ...image.repoDigests]);
    const parts: { entry: Entry; mode: (typeof REFERENCE_MODES)[number]; built: EngineImage }[] = [];
    for (const entry of this.entries.values()) {
      if (entry.imageId !== image.id) continue;
      for (const mode of ['both', 'digest', 'tag'] as const) {
        const built = engineImageOf(entry, mode);
        if ([...built.repoTags, ...built.repoDigests].every((r) => refs.has(r))) {
          parts.push({ entry, mode, built });
          break;
        }
      }
    }
    if (parts.length < 2) return undefined;
    const union = (pick: (i: EngineImage) => readonly string[]) => [
      ...new Set(parts.flatMap((p) => pick(p.built))),
    ];
    const first = parts[0]?.built;
    const mergedImage = first && {
      ...first,
      repoTags: union((i) => i.repoTags),
      repoDigests: union((i) => i.repoDigests),
    };
    if (!sameJson(mergedImage, image)) return undefined;
    return parts.map((p) => (p.mode === 'digest' ? p.entry.key : { image: p.entry.key, references: p.mode }));
  }

  /** An images-table entry reproducing an engine image with one digest and tags of the same repository. */
  private candidateEntry(image: EngineImage): Omit<Entry, 'key' | 'idField'> | undefined {
    const [only, ...rest] = image.repoDigests;
    if (only === undefined || rest.length > 0) return undefined;
    const ref = parseReference(only);
    if (ref.digest === undefined) return undefined;
    // Entries sharing an image ID must share layers; a raw image may not (the loader allows that).
    const layers = this.layersOfId(image.id);
    if (layers !== undefined && !sameJson(layers, image.layers)) return undefined;
    const tags: string[] = [];
    for (const tagged of image.repoTags) {
      const t = parseReference(tagged);
      if (t.repository !== ref.repository || t.tag === undefined) return undefined;
      tags.push(t.tag);
    }
    return { repository: ref.repository, digest: ref.digest, imageId: image.id, layers: image.layers, tags };
  }

  /** Image symbols whose digest the content uses only inside references (rows, targets, steps). */
  private defineSymbolOnlyImages(): void {
    const references = sha256References(this.c);
    for (const [value, symbol] of this.symbols) {
      if (!isSymbol(symbol) || manifestDigestOf(symbol) !== value || this.entries.has(symbol)) continue;
      const repository = references.get(value) ?? UNUSED_REPOSITORY;
      const imageId = configIdOf(symbol);
      this.newEntry(
        { repository, digest: value, imageId, layers: this.layersOfId(imageId) ?? [], tags: [] },
        symbol,
      );
    }
  }

  private chooseIdFields(): void {
    for (const entry of this.entries.values()) {
      if (entry.imageId === configIdOf(entry.key)) continue;
      const symbol = this.symbols.get(entry.imageId);
      if (
        symbol !== undefined &&
        isSymbol(symbol) &&
        configIdOf(symbol) === entry.imageId &&
        !this.entries.has(symbol)
      ) {
        entry.idField = symbol;
        continue;
      }
      // "Builds identically": name another image with this ID whose own key derives it.
      const twin = [...this.entries.values()].find(
        (e) => e !== entry && e.imageId === entry.imageId && e.imageId === configIdOf(e.key),
      );
      entry.idField = twin ? twin.key : entry.imageId;
    }
  }

  /** Image-ID symbols in the table that no entry declares yet get a placeholder image declaring them. */
  private declareIdSymbols(): void {
    for (const [value, symbol] of this.symbols) {
      if (!isSymbol(symbol) || configIdOf(symbol) !== value || this.entries.has(symbol)) continue;
      if (this.declaredIds().has(symbol)) continue;
      const layers = this.layersOfId(value) ?? [];
      const entry = this.newEntry(
        { repository: UNUSED_REPOSITORY, digest: '', imageId: value, layers, tags: [] },
        this.inventKey(),
      );
      this.entries.set(entry.key, { ...entry, digest: manifestDigestOf(entry.key), idField: symbol });
    }
  }

  /** Layers of the entries with this image ID: the loader wants one layer list per image ID. */
  private layersOfId(imageId: string): readonly Layer[] | undefined {
    for (const e of this.entries.values()) if (e.imageId === imageId) return e.layers;
    return undefined;
  }

  private declaredIds(): Set<string> {
    const ids = new Set<string>();
    for (const e of this.entries.values())
      if (e.idField !== undefined && !this.entries.has(e.idField)) ids.add(e.idField);
    return ids;
  }

  private imagesOut(): Record<string, Plain> {
    const out: Record<string, Plain> = {};
    for (const e of this.entries.values()) {
      const spec: Record<string, Plain> = { repo: e.repository, layers: this.layerList(e.layers) };
      if (e.tags.length > 0) spec['tags'] = [...e.tags];
      if (e.idField !== undefined) spec['id'] = e.idField;
      if (e.digest !== manifestDigestOf(e.key)) spec['digest'] = e.digest;
      out[e.key] = spec;
    }
    return out;
  }

  // ---- values ----

  private layerList(layers: readonly Layer[]): string[] {
    return layers.map((l) => this.layerNames.get(l.digest) ?? l.digest);
  }

  /** A name the loader resolves to this image ID: its symbol, an image with that ID, or the ID itself. */
  private imageIdRef(id: string): string {
    const symbol = this.symbols.get(id);
    if (symbol !== undefined && configIdOf(symbol) === id) {
      const entry = this.entries.get(symbol);
      if (entry ? entry.imageId === id : this.declaredIds().has(symbol)) return symbol;
    }
    const entry = [...this.entries.values()].find(
      (e) => e.imageId === id && e.repository !== UNUSED_REPOSITORY,
    );
    return entry ? entry.key : id;
  }

  /** The image symbol whose `repo@digest` is exactly this reference, or the reference itself. */
  private ref(name: string): string {
    const matches = [...this.entries.values()].filter((e) => `${e.repository}@${e.digest}` === name);
    const preferred = matches.find((e) => this.symbols.get(e.digest) === e.key) ?? matches[0];
    return preferred ? preferred.key : name;
  }

  /** Whether `image` as written makes the loader default a row's `id` to `dockerImageId`. */
  private defaultsTo(image: string, dockerImageId: string | null): boolean {
    return dockerImageId !== null && this.entries.get(image)?.imageId === dockerImageId;
  }

  private config(): Record<string, Plain> {
    const { deltas, engineDeltas, diskLimit, systemApps } = this.c.config;
    const out: Record<string, Plain> = {};
    if (deltas) out['deltas'] = true;
    if (engineDeltas) out['engineDeltas'] = true;
    if (diskLimit !== undefined) out['diskLimit'] = diskLimit;
    if (systemApps.length > 0) out['systemApps'] = [...systemApps];
    return out;
  }

  private initial(engineImages: Plain[]): Record<string, Plain> {
    const i = this.c.initial;
    const out: Record<string, Plain> = {};
    const engine: Record<string, Plain> = {};
    if (engineImages.length > 0) engine['images'] = engineImages;
    if (i.partialLayers.length > 0) engine['partialLayers'] = this.layerList(i.partialLayers);
    if (Object.keys(engine).length > 0) out['engine'] = engine;
    if (i.rows.length > 0) {
      out['rows'] = i.rows.map((row, index) => {
        const image = this.ref(row.name);
        const spec: Record<string, Plain> = { image, app: row.appId, service: row.serviceName };
        if (row.serviceId !== deriveServiceId(row.serviceName)) spec['serviceId'] = row.serviceId;
        spec['commit'] = row.commit;
        if (row.dockerImageId === null) spec['id'] = null;
        else if (!this.defaultsTo(image, row.dockerImageId)) spec['id'] = this.imageIdRef(row.dockerImageId);
        if (row.imageId !== deriveImageId(row.appId, row.serviceId, row.commit))
          spec['imageId'] = row.imageId;
        if (row.releaseId !== deriveReleaseId(row.commit)) spec['releaseId'] = row.releaseId;
        if (row.id !== index + 1) spec['rowId'] = row.id;
        return spec;
      });
    }
    if (i.containers.length > 0) out['containers'] = i.containers.map((c) => this.container(c));
    if (i.target !== null) out['target'] = this.target(i.target);
    if (i.dependent.length > 0) out['dependent'] = this.dependents(i.dependent);
    return out;
  }

  private container(c: Container): Record<string, Plain> {
    if (!c.service) {
      const spec: Record<string, Plain> = { id: c.id, image: this.imageIdRef(c.imageId) };
      if (!c.running) spec['running'] = false;
      spec['foreign'] = true;
      return spec;
    }
    const s = c.service;
    const spec: Record<string, Plain> = {};
    if (c.id !== defaultContainerId(s.serviceName, s.appId, s.commit)) spec['id'] = c.id;
    spec['service'] = s.serviceName;
    spec['app'] = s.appId;
    if (s.serviceId !== deriveServiceId(s.serviceName)) spec['serviceId'] = s.serviceId;
    spec['commit'] = s.commit;
    spec['image'] = this.imageIdRef(c.imageId);
    if (!c.running) spec['running'] = false;
    if (s.locked !== undefined) spec['locked'] = s.locked;
    return spec;
  }

  /** Consecutive services of one app and release form one app entry, so the order is kept. */
  private target(target: Target): Record<string, Plain> {
    const apps: { id: number; commit: string; releaseId: number; names: Set<string>; services: Plain[] }[] =
      [];
    for (const s of target.services) {
      let app = apps[apps.length - 1];
      if (
        !app ||
        app.id !== s.appId ||
        app.commit !== s.commit ||
        app.releaseId !== s.releaseId ||
        app.names.has(s.serviceName)
      ) {
        app = { id: s.appId, commit: s.commit, releaseId: s.releaseId, names: new Set(), services: [] };
        apps.push(app);
      }
      app.names.add(s.serviceName);
      const spec: Record<string, Plain> = {};
      if (s.serviceId !== deriveServiceId(s.serviceName)) spec['id'] = s.serviceId;
      spec['name'] = s.serviceName;
      spec['image'] = this.ref(s.name);
      if (s.imageId !== deriveImageId(s.appId, s.serviceId, s.commit)) spec['imageId'] = s.imageId;
      if (s.strategy !== 'download-then-kill') spec['strategy'] = s.strategy;
      app.services.push(spec);
    }
    const out: Record<string, Plain> = {};
    if (apps.length > 0) {
      out['apps'] = apps.map((a) => {
        const spec: Record<string, Plain> = { id: a.id, commit: a.commit };
        if (a.releaseId !== deriveReleaseId(a.commit)) spec['releaseId'] = a.releaseId;
        spec['services'] = a.services;
        return spec;
      });
    }
    if (target.dependent.length > 0) out['dependent'] = this.dependents(target.dependent);
    return out;
  }

  private dependents(images: readonly TargetImage[]): Plain[] {
    return images.map((d) => {
      const spec: Record<string, Plain> = { app: d.appId, service: d.serviceName };
      if (d.serviceId !== deriveServiceId(d.serviceName)) spec['serviceId'] = d.serviceId;
      spec['image'] = this.ref(d.name);
      spec['commit'] = d.commit;
      if (d.imageId !== deriveImageId(d.appId, d.serviceId, d.commit)) spec['imageId'] = d.imageId;
      if (d.releaseId !== deriveReleaseId(d.commit)) spec['releaseId'] = d.releaseId;
      return spec;
    });
  }

  private step(step: ScenarioStep): Plain {
    switch (step.kind) {
      case 'apply': {
        const target = this.target(step.target);
        return { apply: step.intermediate ? { intermediate: target } : target };
      }
      case 'power-cut': {
        const spec: Record<string, Plain> = { at: step.at };
        if (step.match !== undefined) Object.assign(spec, this.cutMatch(step.match, step.at));
        if (step.occurrence !== 1) spec['occurrence'] = step.occurrence;
        // `resume` is newer than the rest of the contract; read it without depending on it.
        const { resume } = step as { resume?: boolean };
        if (resume !== undefined) spec['resume'] = resume;
        return { 'power-cut': spec };
      }
      case 'restart':
      case 'idle':
      case 'wipe-db':
        return { [step.kind]: {} };
      case 'idle-during-pull':
        return {
          'idle-during-pull': {
            ...(step.ref !== '' ? { image: this.ref(step.ref) } : {}),
            afterLayers: step.afterLayers,
          },
        };
      case 'container': {
        const m = step.match;
        const onlyService =
          m.serviceName !== undefined && m.appId === undefined && m.containerId === undefined;
        const match: Plain = onlyService
          ? (m.serviceName ?? '')
          : {
              ...(m.serviceName !== undefined ? { service: m.serviceName } : {}),
              ...(m.appId !== undefined ? { app: m.appId } : {}),
              ...(m.containerId !== undefined ? { id: m.containerId } : {}),
            };
        return { container: { [step.action]: match } };
      }
      case 'add-container':
        return { 'add-container': this.container(step.container) };
      case 'delete-rows': {
        const spec: Record<string, Plain> = {};
        if (step.match.name !== undefined) spec['image'] = this.ref(step.match.name);
        if (step.match.serviceName !== undefined) spec['service'] = step.match.serviceName;
        return { 'delete-rows': spec };
      }
      case 'set-dependent':
        return { 'set-dependent': this.dependents(step.images) };
      case 'engine-fault': {
        const spec: Record<string, Plain> = { op: step.op, error: step.error };
        if (step.times !== 1) spec['times'] = step.times;
        if (step.ref !== undefined) spec['image'] = this.ref(step.ref);
        return { 'engine-fault': spec };
      }
      case 'engine-remove-image':
        return { 'engine-remove-image': this.imageIdRef(step.imageId) };
    }
  }

  /** `match: symbol` when a symbol compiles back to this text (see the loader's rule), else literal. */
  private cutMatch(match: string, at: string): Record<string, Plain> {
    const symbol = this.symbols.get(match);
    const entry = symbol === undefined ? undefined : this.entries.get(symbol);
    if (entry && (at === 'mid-idle-cleanup' ? entry.imageId : entry.digest) === match)
      return { match: entry.key };
    if (symbol !== undefined && !entry && configIdOf(symbol) === match && this.declaredIds().has(symbol))
      return { match: symbol };
    // A literal that happens to be a symbol would be read as one.
    const readAsSymbol = this.entries.has(match) || this.declaredIds().has(match);
    return readAsSymbol ? { matchText: match } : { match };
  }

  private expectations(): Record<string, Plain> {
    const e = this.c.expect;
    const out: Record<string, Plain> = {};
    const ids = (values: readonly string[]): Plain[] => values.map((v) => this.imageIdRef(v));
    if (e.present.length > 0) out['present'] = ids(e.present);
    if (e.absent.length > 0) out['absent'] = ids(e.absent);
    if (e.rows !== undefined) out['rows'] = e.rows.map((r) => this.expectedRow(r));
    if (e.bytesDownloadedAtMost !== undefined) out['bytesDownloadedAtMost'] = e.bytesDownloadedAtMost;
    if (e.diskAtMost !== undefined) out['diskAtMost'] = e.diskAtMost;
    if (e.peakDiskAtMost !== undefined) out['peakDiskAtMost'] = e.peakDiskAtMost;
    if (!e.noDangling) out['noDangling'] = false;
    if (!e.converged) out['converged'] = false;
    if (e.containers !== undefined) {
      out['containers'] = e.containers.map((c) => ({
        service: c.serviceName,
        image: this.imageIdRef(c.imageId),
        ...(c.running !== undefined ? { running: c.running } : {}),
      }));
    }
    if (e.alwaysPresent.length > 0) out['alwaysPresent'] = ids(e.alwaysPresent);
    if (e.neverRemoved.length > 0) out['neverRemoved'] = ids(e.neverRemoved);
    return out;
  }

  private expectedRow(r: ExpectedRow): Record<string, Plain> {
    const image = this.ref(r.name);
    const spec: Record<string, Plain> = { image, app: r.appId, service: r.serviceName, commit: r.commit };
    if (r.dockerImageId === null) spec['id'] = null;
    else if (!this.defaultsTo(image, r.dockerImageId)) spec['id'] = this.imageIdRef(r.dockerImageId);
    return spec;
  }
}

/** Manifest digest -> repository, from every `repo@sha256:` reference in the scenario's content. */
function sha256References(c: CompiledScenario): Map<string, string> {
  const { symbols: _symbols, file: _file, ...content } = c;
  const found = new Map<string, string>();
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      const at = v.indexOf('@sha256:');
      if (at > 0) {
        const digest = sha256Values(v.slice(at + 1))[0];
        try {
          const repository = parseReference(v).repository;
          if (digest !== undefined && !found.has(digest)) found.set(digest, repository);
        } catch {
          // Not a reference (a match text, say): nothing to learn from it.
        }
      }
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk(content);
  return found;
}

function isParts(value: unknown): value is { parts: Plain[] } {
  return isObject(value) && Array.isArray(value['parts']) && Object.keys(value).length === 1;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(normalizeKeys(a, b));
}

/** `b` with keys in `a`'s order, so key order never makes equal values differ. */
function normalizeKeys(a: unknown, b: unknown): unknown {
  if (Array.isArray(a) && Array.isArray(b)) return b.map((item, i) => normalizeKeys(a[i], item));
  if (isObject(a) && isObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !(k in a))];
    return Object.fromEntries(keys.filter((k) => k in b).map((k) => [k, normalizeKeys(a[k], b[k])]));
  }
  return b;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const FLOW_MAX = 100;

/** Block style for structure, flow style for small leaf collections (`{ repo: ..., layers: [a, b] }`). */
function render(doc: Record<string, Plain>, file: string): string {
  const yaml = new Document(doc);
  yaml.commentBefore = ` Written by writeScenario from ${file}`;
  visit(yaml, {
    Map: (_key, node, path) => {
      if (isStepItem(path)) return;
      if (path.length > 1 && isShallow(node) && JSON.stringify(node.toJSON()).length <= FLOW_MAX)
        node.flow = true;
    },
    Seq: (_key, node, path) => {
      if (
        path.length > 1 &&
        node.items.every((i) => isScalar(i)) &&
        JSON.stringify(node.toJSON()).length <= FLOW_MAX
      ) {
        node.flow = true;
      }
    },
  });
  return yaml.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** The `- kind: ...` map of a step stays block so each step reads as one line-led item. */
function isStepItem(path: readonly unknown[]): boolean {
  const parentPair = path[path.length - 2];
  return (
    isSeq(path[path.length - 1]) &&
    isPair(parentPair) &&
    isScalar(parentPair.key) &&
    parentPair.key.value === 'steps'
  );
}

/** Scalars, or collections of scalars: nothing nested deeper than one level. */
function isShallow(node: Node): boolean {
  if (!isMap(node)) return false;
  return node.items.every((pair) => {
    const v = pair.value;
    if (isScalar(v)) return true;
    if (isSeq(v)) return v.items.every((i) => isScalar(i));
    if (isMap(v)) return v.items.every((p) => isScalar(p.value));
    return false;
  });
}
