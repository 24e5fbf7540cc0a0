import { resolve } from 'node:path';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import { deriveServiceId } from '../../core/target/derived-ids.js';
import type { CompiledScenario } from './compiled-scenario.js';
import { loadScenarioText } from './load-scenario.js';
import {
  CONTAINER_ACTIONS,
  ENGINE_FAULT_ERRORS,
  ENGINE_FAULT_OPS,
  REFERENCE_MODES,
} from './scenario-schema.js';
import { writeScenario } from './write-scenario.js';

const DIR = resolve('scenarios/field');

function load(text: string, file = '<generated>'): CompiledScenario {
  return loadScenarioText(text, file, DIR);
}

/** What must survive a write and a load: everything but where it came from. */
function comparable(s: CompiledScenario): unknown {
  return { ...s, file: '', steps: s.steps.map(({ line: _line, ...step }) => step) };
}

function roundTrip(compiled: CompiledScenario): { written: string; back: CompiledScenario } {
  const written = writeScenario(compiled);
  return { written, back: load(written, '<written>') };
}

const EXAMPLE = `name: fb-02-shared-image
description: Two services share one engine image; one is dropped.
layers: { base: 1000, top: 10 }
images:
  s1: { repo: reg.local/s1, layers: [base, top] }
  s2: { repo: reg.local/s2, layers: [base, top], id: s1 }
  e1: { repo: reg.local/s1, layers: [base] }
initial:
  engine: { images: [s1, s2] }
  rows:
    - { image: s1, app: 1, service: app_1, commit: c1 }
    - { image: s2, app: 1, service: app_2, commit: c1 }
  containers:
    - { service: app_1, app: 1, commit: c1, image: s1 }
    - { service: app_2, app: 1, commit: c1, image: s1 }
steps:
  - power-cut: { at: between-untag-and-delete, match: s1 }
  - apply: { apps: [{ id: 1, commit: c2, services: [{ name: app_2, image: s2 }] }] }
expect:
  present: [s1]
  rows: [{ image: s2, app: 1, service: app_2, commit: c2 }]
  alwaysPresent: [s1]
`;

describe('writeScenario', () => {
  it('writes a readable scenario that loads back equal', () => {
    const compiled = load(EXAMPLE);
    const { written, back } = roundTrip(compiled);
    expect(comparable(back)).toEqual(comparable(compiled));
    // Symbols come back instead of sha256 values wherever they derive them.
    expect(written).not.toContain('sha256:');
    expect(written).toContain('s2: {repo: reg.local/s2, layers: [base, top], id: s1}');
    expect(written).toContain('engine: {images: [s1, s2]}');
    expect(written).toContain('- power-cut: {at: between-untag-and-delete, match: s1}');
    expect(written).toContain('- {image: s2, app: 1, service: app_2, commit: c2}');
  });

  it('writes full values when there are no symbols', () => {
    const compiled = { ...load(EXAMPLE), symbols: {} };
    const { written, back } = roundTrip(compiled);
    expect(comparable(back)).toEqual(comparable(compiled));
    expect(written).toContain('sha256:');
  });

  it('keeps literal match texts that look like symbols literal', () => {
    const compiled = load(`name: m
images: { a1: { repo: reg.local/a } }
steps:
  - power-cut: { at: after-save, matchText: a1 }
  - power-cut: { at: after-save, match: a1 }
  - power-cut: { at: mid-idle-cleanup, match: a1 }
`);
    const { written, back } = roundTrip(compiled);
    expect(comparable(back)).toEqual(comparable(compiled));
    expect(written).toContain('matchText: a1');
  });

  it('round-trips a scenario that uses a balena target file', () => {
    const compiled = load('name: f\nsteps:\n  - apply: { file: ../targets/balena-update.json }\n');
    const { written, back } = roundTrip(compiled);
    expect(comparable(back)).toEqual(comparable(compiled));
    expect(written).toContain('127.0.0.1:5000/gateway/main@sha256:');
  });
});

// ---- an arbitrary of small symbolic scenarios ----

const LAYER_NAMES = ['base', 'l1', 'l2', 'l3'] as const;
const IMAGE_SYMBOLS = ['a1', 'a2', 'b1', 'b2', 's_old', 'x'] as const;
const REPOS = ['reg.local/app/main', 'reg.local/app/worker', '127.0.0.1:5000/v2/abc123'] as const;
const SERVICES = ['main', 'worker', 'sidecar'] as const;
const COMMITS = ['c1', 'c2', '7f3e9a'] as const;
const FULL_REFS = [
  'reg.local/other:7',
  'reg.local/app/main:v9',
  `reg.local/app/main@sha256:${'9'.repeat(64)}`,
] as const;
const SHARED_ID = 'shared';

type Doc = Record<string, unknown>;

const hex64 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const sha = hex64.map((h) => `sha256:${h}`);
/** Distinct by construction, so generated IDs never collide by accident. */
const numberedSha = (prefix: string, i: number): string =>
  `sha256:${prefix}${i.toString(16).padStart(64 - prefix.length, '0')}`;
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const smallId = fc.integer({ min: 1, max: 5 });

/** Drops undefined values so the YAML has no `key: null` where the key was meant to be absent. */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, clean(v)]),
    );
  }
  return value;
}

interface ImagePlan {
  readonly symbol: string;
  readonly spec: Doc;
  readonly layers: readonly string[];
}

const imageFields = fc.record({
  repo: fc.constantFrom(...REPOS),
  layers: fc.subarray<string>([...LAYER_NAMES]),
  tags: opt(fc.subarray(['v1', 'v2', 'latest'], { minLength: 1 })),
  idKind: fc.constantFrom('own', 'own', 'shared', 'earlier', 'sha'),
  digest: fc.option(sha, { nil: undefined, freq: 4 }),
});
type ImageFields = typeof imageFields extends fc.Arbitrary<infer T> ? T : never;

/**
 * Images whose IDs coincide (`id: shared`, or `id: <first image>`) get one layer list, as the loader
 * requires of images sharing an image ID.
 */
function planImages(symbols: readonly string[], fields: readonly ImageFields[]): ImagePlan[] {
  const plans: ImagePlan[] = [];
  let sharedLayers: readonly string[] | undefined;
  symbols.forEach((symbol, i) => {
    const f = fields[i];
    if (!f) return;
    let layers: readonly string[] = f.layers;
    let id: string | undefined;
    const first = plans[0];
    if (f.idKind === 'shared') {
      sharedLayers ??= layers;
      layers = sharedLayers;
      id = SHARED_ID;
    } else if (f.idKind === 'earlier' && first && first.spec['id'] !== SHARED_ID) {
      id = first.symbol;
      layers = first.layers;
    } else if (f.idKind === 'sha') {
      id = numberedSha('e', i);
    }
    plans.push({
      symbol,
      layers,
      spec: { repo: f.repo, layers: [...layers], tags: f.tags, id, digest: f.digest },
    });
  });
  return plans;
}

function scenarioArbitrary(): fc.Arbitrary<Doc> {
  return fc
    .record({
      layerSizes: fc.array(fc.nat({ max: 5_000_000 }), { minLength: 5, maxLength: 5 }),
      layerNames: fc.subarray([...LAYER_NAMES], { minLength: 1 }),
      explicitLayer: fc.boolean(),
      symbols: fc.subarray([...IMAGE_SYMBOLS], { minLength: 1 }),
    })
    .chain((base) => fc.tuple(...base.symbols.map(() => imageFields)).map((fields) => ({ base, fields })))
    .chain(({ base, fields }) => {
      const layerNames = [...base.layerNames, ...(base.explicitLayer ? [numberedSha('1a', 1)] : [])];
      const layers = Object.fromEntries(layerNames.map((n, i) => [n, base.layerSizes[i] ?? 0]));
      const plans = planImages(
        base.symbols,
        fields.map((f) => ({ ...f, layers: f.layers.filter((l) => layerNames.includes(l)) })),
      );
      const symbols = plans.map((p) => p.symbol);
      const declaredIds = plans.some((p) => p.spec['id'] === SHARED_ID) ? [SHARED_ID] : [];
      const layersOf = (symbol: string) => plans.find((p) => p.symbol === symbol)?.layers ?? [];

      const symbol = fc.constantFrom(...symbols);
      const ref = fc.oneof(
        { weight: 3, arbitrary: symbol },
        { weight: 1, arbitrary: fc.constantFrom(...FULL_REFS) },
      );
      const idName = fc.oneof(
        { weight: 4, arbitrary: symbol },
        { weight: declaredIds.length > 0 ? 1 : 0, arbitrary: fc.constantFrom(SHARED_ID) },
        { weight: 1, arbitrary: sha },
      );
      const service = fc.constantFrom(...SERVICES);
      const commit = fc.constantFrom(...COMMITS);
      const cloudId = opt(fc.integer({ min: 1, max: 999_999 }));

      const dependent = fc.record({
        app: fc.constantFrom(7, 9),
        service: fc.constantFrom('dep', 'db'),
        serviceId: opt(smallId),
        image: ref,
        commit,
        imageId: cloudId,
        releaseId: cloudId,
      });
      const target = fc.record({
        apps: opt(
          // A target names each app once, and each service of an app once by name and by serviceId.
          fc.uniqueArray(
            fc.record({
              id: fc.constantFrom(1, 2, 3),
              name: opt(fc.constant('app')),
              commit,
              releaseId: cloudId,
              services: opt(
                fc
                  .uniqueArray(
                    fc.record({
                      id: opt(smallId),
                      name: service,
                      image: ref,
                      imageId: cloudId,
                      strategy: opt(fc.constantFrom('download-then-kill', 'delete-then-download')),
                    }),
                    { selector: (s) => s.name, maxLength: 3 },
                  )
                  .filter(
                    (list) => new Set(list.map((s) => s.id ?? deriveServiceId(s.name))).size === list.length,
                  ),
              ),
            }),
            { selector: (a) => a.id, maxLength: 3 },
          ),
        ),
        dependent: opt(fc.array(dependent, { maxLength: 2 })),
      });
      const serviceContainer = fc.record({
        id: opt(fc.constantFrom('ctr-a', 'ctr-b')),
        service,
        app: fc.constantFrom(1, 2),
        serviceId: opt(smallId),
        commit,
        image: idName,
        running: opt(fc.boolean()),
        locked: opt(fc.boolean()),
      });
      const foreignContainer = fc.record({
        image: idName,
        running: opt(fc.boolean()),
        foreign: fc.constant(true),
      });
      const container = fc.oneof(serviceContainer, foreignContainer);
      /** Container IDs must be unique within the initial state. */
      const uniqueContainers = (list: Doc[]) =>
        list.map((c, i) => {
          if (c['foreign'] === true) return { ...c, id: `foreign-${i}` };
          const id =
            (c['id'] as string | undefined) ??
            `${String(c['service'])}_${String(c['app'])}_${String(c['commit'])}`;
          const taken = list
            .slice(0, i)
            .some(
              (o, j) =>
                (o['foreign'] === true
                  ? `foreign-${j}`
                  : (o['id'] ?? `${String(o['service'])}_${String(o['app'])}_${String(o['commit'])}`)) === id,
            );
          return taken ? { ...c, id: `ctr-${i}` } : c;
        });
      const withRowId = (image: string, id: unknown) =>
        FULL_REFS.includes(image as never) && id === undefined ? null : id;
      const row = fc.record({
        image: ref,
        app: fc.constantFrom(1, 2),
        service,
        serviceId: opt(smallId),
        commit,
        id: fc.oneof(fc.constant(undefined), fc.constant(null), idName),
        imageId: cloudId,
        releaseId: cloudId,
        explicitRowId: fc.boolean(),
      });
      const engineImage = fc.oneof(
        symbol,
        fc.record({ image: symbol, references: fc.constantFrom(...REFERENCE_MODES) }),
        fc.record({
          kind: fc.constantFrom('fresh', 'symbol'),
          symbol,
          layers: fc.subarray(layerNames),
          repoTags: opt(fc.constant(['reg.local/raw:t1', 'reg.local/raw:t2'])),
          repoDigests: opt(fc.constant([`reg.local/raw@sha256:${'5'.repeat(64)}`])),
        }),
      );
      const step = fc.oneof(
        target.map((t) => ({ apply: t })),
        target.map((t) => ({ apply: { intermediate: t } })),
        fc
          .record({
            at: fc.constantFrom(...CRASH_POINTS),
            match: opt(fc.oneof(symbol, fc.constantFrom('main', 'after 1 layer(s)'))),
            literal: fc.boolean(),
            occurrence: opt(fc.integer({ min: 1, max: 3 })),
          })
          .map(({ literal, match, ...cut }) =>
            literal && match !== undefined
              ? { 'power-cut': { ...cut, matchText: match } }
              : { 'power-cut': { ...cut, match } },
          ),
        fc.constantFrom<unknown>('restart', 'idle', 'wipe-db', { restart: {} }, { idle: null }),
        fc
          .record({ image: ref, afterLayers: opt(fc.nat({ max: 3 })) })
          .map((s) => ({ 'idle-during-pull': s })),
        fc
          .tuple(
            fc.constantFrom(...CONTAINER_ACTIONS),
            fc.oneof(
              service,
              fc.record({
                service: opt(service),
                app: opt(fc.constantFrom(1, 2)),
                id: opt(fc.constant('supervisor')),
              }),
            ),
          )
          .map(([action, match]) => ({ container: { [action]: match } })),
        serviceContainer.map((c) => ({ 'add-container': c })),
        foreignContainer.map((c) => ({ 'add-container': { ...c, id: 'extra' } })),
        fc.record({ image: opt(ref), service: opt(service) }).map((d) => ({ 'delete-rows': d })),
        fc.array(dependent, { maxLength: 2 }).map((d) => ({ 'set-dependent': d })),
        fc
          .record({
            op: fc.constantFrom(...ENGINE_FAULT_OPS),
            error: fc.constantFrom(...ENGINE_FAULT_ERRORS),
            times: opt(fc.integer({ min: 1, max: 4 })),
            image: opt(ref),
          })
          .map((f) => ({ 'engine-fault': f })),
        idName.map((id) => ({ 'engine-remove-image': id })),
      );
      const expectedRow = fc.record({
        image: ref,
        app: fc.constantFrom(1, 2),
        service,
        commit,
        id: fc.oneof(fc.constant(undefined), fc.constant(null), idName),
      });

      return fc
        .record({
          name: fc.constantFrom('generated', 'power cut: mid-pull'),
          description: opt(fc.constantFrom('', 'true', 'Two lines\nof text', '12')),
          source: opt(fc.constant('balena-os/balena-supervisor#1616')),
          config: opt(
            fc.record({
              deltas: opt(fc.boolean()),
              engineDeltas: opt(fc.boolean()),
              diskLimit: opt(fc.nat()),
              systemApps: opt(fc.array(smallId, { maxLength: 2 })),
            }),
          ),
          registry: opt(fc.subarray(symbols)),
          engineImages: fc.array(engineImage, { maxLength: 4 }),
          partialLayers: opt(fc.subarray(layerNames)),
          rows: fc.array(row, { maxLength: 4 }),
          containers: fc.array(container, { maxLength: 3 }),
          target: opt(target),
          dependent: opt(fc.array(dependent, { maxLength: 2 })),
          steps: fc.array(step, { maxLength: 8 }),
          cutAtCalls: opt(fc.array(fc.integer({ min: 1, max: 500 }), { maxLength: 3 })),
          expect: opt(
            fc.record({
              present: opt(fc.array(idName, { maxLength: 2 })),
              absent: opt(fc.array(idName, { maxLength: 2 })),
              rows: opt(fc.array(expectedRow, { maxLength: 2 })),
              bytesDownloadedAtMost: opt(fc.nat()),
              diskAtMost: opt(fc.nat()),
              peakDiskAtMost: opt(fc.nat()),
              noDangling: opt(fc.boolean()),
              converged: opt(fc.boolean()),
              containers: opt(
                fc.array(fc.record({ service, image: idName, running: opt(fc.boolean()) }), { maxLength: 2 }),
              ),
              alwaysPresent: opt(fc.array(idName, { maxLength: 2 })),
              neverRemoved: opt(fc.array(idName, { maxLength: 2 })),
            }),
          ),
        })
        .map((r) => {
          const engineImages = r.engineImages.map((e, i) => {
            if (typeof e === 'string' || 'references' in e) return e;
            // Raw images: a fresh ID with any layers, or an image's ID with that image's layers.
            const id = e.kind === 'fresh' ? numberedSha('f', i) : e.symbol;
            const rawLayers = e.kind === 'fresh' ? e.layers : [...layersOf(e.symbol)];
            return { id, layers: rawLayers, repoTags: e.repoTags, repoDigests: e.repoDigests };
          });
          const expect =
            r.expect === undefined
              ? undefined
              : {
                  ...r.expect,
                  rows: r.expect.rows?.map((row) => ({ ...row, id: withRowId(row.image, row.id) })),
                };
          return clean({
            name: r.name,
            description: r.description,
            source: r.source,
            config: r.config,
            layers,
            images: Object.fromEntries(plans.map((p) => [p.symbol, p.spec])),
            registry: r.registry,
            initial: {
              engine: { images: engineImages, partialLayers: r.partialLayers },
              rows: r.rows.map(({ explicitRowId, ...row }, i) => ({
                ...row,
                id: withRowId(row.image, row.id),
                rowId: explicitRowId ? 100 + i : undefined,
              })),
              containers: uniqueContainers(r.containers as Doc[]),
              target: r.target,
              dependent: r.dependent,
            },
            steps: r.steps,
            cutAtCalls: r.cutAtCalls,
            expect,
          }) as Doc;
        });
    });
}

describe('writeScenario properties', () => {
  it('write then load is the identity on compiled scenarios', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), (doc) => {
        const compiled = load(stringify(doc));
        const { back } = roundTrip(compiled);
        expect(comparable(back)).toEqual(comparable(compiled));
      }),
      { numRuns: 300 },
    );
  });

  it('write then load is the identity without symbols too', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), (doc) => {
        const compiled = { ...load(stringify(doc)), symbols: {} };
        const { back } = roundTrip(compiled);
        expect(comparable(back)).toEqual(comparable(compiled));
      }),
      { numRuns: 150 },
    );
  });
});
