import fc from 'fast-check';
import type { Container } from '../../core/model/container.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage, TargetService, UpdateStrategy } from '../../core/model/target.js';
import type { CrashPoint } from '../../core/ports/crash-points.js';
import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import type { CompiledScenario, ScenarioStep } from '../scenario/compiled-scenario.js';
import { engineImageOf, registryOf, sha, symbolsOf, UNIVERSE, universeImage } from './universe.js';

/** A device history in plain data: what fast-check generates and shrinks, and what a failure replays. */
export interface History {
  readonly deltas: boolean;
  /** empty device; app installed with its target persisted; images and rows present but no target known. */
  readonly initial: 'empty' | 'installed' | 'installed-no-target';
  readonly events: readonly HistoryEvent[];
  /** Cuts before the k-th port call, on top of the named ones in `events`. */
  readonly cutAtCalls: readonly number[];
}

export type HistoryEvent =
  | {
      readonly kind: 'apply';
      readonly services: readonly {
        readonly slot: Slot;
        readonly image: string;
        readonly strategy: UpdateStrategy;
      }[];
      readonly dependent: readonly string[];
      readonly intermediate?: boolean;
    }
  | { readonly kind: 'cut'; readonly at: CrashPoint; readonly occurrence: number; readonly resume: boolean }
  | { readonly kind: 'idle' }
  | { readonly kind: 'idle-during-pull'; readonly afterLayers: number }
  | { readonly kind: 'restart' }
  | { readonly kind: 'container'; readonly action: 'stop' | 'start' | 'remove'; readonly service: string }
  | { readonly kind: 'dependent'; readonly images: readonly string[] }
  | {
      readonly kind: 'fault';
      readonly error: 'registry-500' | 'timeout' | 'registry-404';
      readonly times: number;
    }
  | { readonly kind: 'lose-image'; readonly image: string };

/**
 * Service slots: two services of app 1 (they may share an image), two of app 2, one named like a
 * service of app 1 (a delta source must never come from another app's same-named service).
 */
export const SLOTS = [
  { appId: 1, serviceName: 'main', serviceId: 11, images: ['main1', 'main2', 'main3', 'mirror2'] },
  { appId: 1, serviceName: 'side', serviceId: 12, images: ['main1', 'main2', 'worker1', 'twin1', 'worker2'] },
  { appId: 2, serviceName: 'worker', serviceId: 21, images: ['worker1', 'worker2', 'worker-stable'] },
  { appId: 2, serviceName: 'main', serviceId: 22, images: ['main2', 'main3', 'twin1'] },
] as const;
export type Slot = 0 | 1 | 2 | 3;

const strategyArb = fc.constantFrom<UpdateStrategy>(
  'download-then-kill',
  'download-then-kill',
  'delete-then-download',
);

const applyArb: fc.Arbitrary<HistoryEvent> = fc
  .record({
    picks: fc.tuple(
      fc.option(fc.record({ image: fc.constantFrom(...SLOTS[0].images), strategy: strategyArb }), {
        nil: undefined,
      }),
      fc.option(fc.record({ image: fc.constantFrom(...SLOTS[1].images), strategy: strategyArb }), {
        nil: undefined,
      }),
      fc.option(fc.record({ image: fc.constantFrom(...SLOTS[2].images), strategy: strategyArb }), {
        nil: undefined,
      }),
      fc.option(fc.record({ image: fc.constantFrom(...SLOTS[3].images), strategy: strategyArb }), {
        nil: undefined,
        freq: 2,
      }),
    ),
    dependent: fc.subarray(['dep1', 'dep2']),
  })
  .map(({ picks, dependent }) => ({
    kind: 'apply' as const,
    services: picks.flatMap((p, slot) =>
      p ? [{ slot: slot as Slot, image: p.image, strategy: p.strategy }] : [],
    ),
    dependent,
  }));

const eventArb: fc.Arbitrary<HistoryEvent> = fc.oneof(
  { weight: 6, arbitrary: applyArb },
  { weight: 1, arbitrary: applyArb.map((a) => ({ ...a, intermediate: true })) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('cut' as const),
      at: fc.constantFrom(...CRASH_POINTS),
      occurrence: fc.integer({ min: 1, max: 3 }),
      resume: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'idle' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('idle-during-pull' as const),
      afterLayers: fc.integer({ min: 1, max: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('container' as const),
      action: fc.constantFrom('stop' as const, 'start' as const, 'remove' as const),
      service: fc.constantFrom('main', 'side', 'worker'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('dependent' as const), images: fc.subarray(['dep1', 'dep2']) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('fault' as const),
      error: fc.constantFrom('registry-500' as const, 'timeout' as const, 'registry-404' as const),
      times: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('lose-image' as const),
      image: fc.constantFrom('main1', 'main2', 'worker1', 'dep1'),
    }),
  },
);

export const historyArb: fc.Arbitrary<History> = fc.record({
  deltas: fc.boolean(),
  initial: fc.constantFrom('empty' as const, 'installed' as const, 'installed-no-target' as const),
  events: fc.array(eventArb, { minLength: 1, maxLength: 8 }),
  cutAtCalls: fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 2 }),
});

function serviceOf(slot: Slot, image: string, commit: string, strategy: UpdateStrategy): TargetService {
  const s = SLOTS[slot];
  const i = universeImage(image);
  return {
    name: i.name,
    appId: s.appId,
    serviceId: s.serviceId,
    serviceName: s.serviceName,
    imageId: 0,
    releaseId: 0,
    commit,
    strategy,
  };
}

/** An image of the dependent app (app 9, run by an attached device, never here). */
function dependentImage(symbol: string, commit: string): TargetImage {
  return {
    name: universeImage(symbol).name,
    appId: 9,
    serviceId: 91,
    serviceName: 'sensor',
    imageId: 0,
    releaseId: 0,
    commit,
  };
}

function targetOf(event: Extract<HistoryEvent, { kind: 'apply' }>, commit: string): Target {
  return {
    services: event.services.map((p) => serviceOf(p.slot, p.image, commit, p.strategy)),
    dependent: event.dependent.map((d) => dependentImage(d, commit)),
  };
}

// The same for every history: made once (a search compiles thousands of histories a second).
const UNIVERSE_REGISTRY = Object.freeze(registryOf(UNIVERSE));
const UNIVERSE_SYMBOLS = Object.freeze(symbolsOf(UNIVERSE));
const DELTA_LEFTOVER_ID = sha('delta-leftover');

/** Turns a history into a scenario the runner executes: the same thing a failure is saved as. */
export function compileHistory(history: History, name = 'random history'): CompiledScenario {
  const rows: ImageRow[] = [];
  const containers: Container[] = [];
  let target: Target | null = null;
  // Images image-keeper never managed: an old supervisor image pulled by digest only, an operator's
  // tagged tool, and the running supervisor. They must survive everything.
  const foreign = [universeImage('sv-old'), universeImage('tool')];
  const images = [
    engineImageOf(universeImage('sv-old')),
    { ...engineImageOf(universeImage('tool')), repoDigests: [], repoTags: ['127.0.0.1:5000/ops/tool:debug'] },
    engineImageOf(universeImage('sv-new')),
  ];
  containers.push({ id: 'supervisor', imageId: universeImage('sv-new').id, running: true });
  void foreign;
  if (history.initial !== 'empty') {
    // What an interrupted v2 delta leaves: an untagged half-built image that idle cleanup must remove.
    const leftover = universeImage('worker2');
    images.push({
      id: DELTA_LEFTOVER_ID,
      repoTags: [],
      repoDigests: [],
      layers: leftover.layers.slice(1),
      size: leftover.layers[1]?.size ?? 0,
    });
    const m = universeImage('main1');
    const w = universeImage('worker1');
    images.push(engineImageOf(m), engineImageOf(w));
    const installed: Target = {
      services: [
        serviceOf(0, 'main1', 'c0', 'download-then-kill'),
        serviceOf(2, 'worker1', 'c0', 'download-then-kill'),
      ],
      dependent: [],
    };
    if (history.initial === 'installed') target = installed;
    installed.services.forEach((s, i) => {
      rows.push({
        id: i + 1,
        name: s.name,
        appId: s.appId,
        serviceId: s.serviceId,
        serviceName: s.serviceName,
        imageId: 0,
        releaseId: 0,
        commit: 'c0',
        dockerImageId: i === 0 ? m.id : w.id,
      });
      containers.push({
        id: `${s.serviceName}_c0`,
        imageId: i === 0 ? m.id : w.id,
        running: true,
        service: { appId: s.appId, serviceId: s.serviceId, serviceName: s.serviceName, commit: 'c0' },
      });
    });
  }
  const steps: ScenarioStep[] = [];
  let commit = 0;
  for (const event of history.events) {
    switch (event.kind) {
      case 'apply':
        steps.push({
          kind: 'apply',
          target: targetOf(event, `c${++commit}`),
          intermediate: event.intermediate ?? false,
        });
        break;
      case 'cut':
        steps.push({ kind: 'power-cut', at: event.at, occurrence: event.occurrence, resume: event.resume });
        break;
      case 'idle-during-pull':
        steps.push({ kind: 'idle-during-pull', ref: '', afterLayers: event.afterLayers });
        break;
      case 'fault':
        steps.push({ kind: 'engine-fault', op: 'pull', error: event.error, times: event.times });
        break;
      case 'lose-image':
        steps.push({ kind: 'engine-remove-image', imageId: universeImage(event.image).id });
        break;
      case 'idle':
        steps.push({ kind: 'idle' });
        break;
      case 'restart':
        steps.push({ kind: 'restart' });
        break;
      case 'container':
        steps.push({ kind: 'container', action: event.action, match: { serviceName: event.service } });
        break;
      case 'dependent':
        steps.push({
          kind: 'set-dependent',
          images: event.images.map((d) => dependentImage(d, 'current')),
        });
        break;
    }
  }
  // A random cut may never be reached (the history ended first): that is not a failure of the device.
  return {
    file: '<generated>',
    name,
    description: `generated history: ${JSON.stringify(history)}`,
    config: { deltas: history.deltas, engineDeltas: true, systemApps: [] },
    registry: UNIVERSE_REGISTRY,
    initial: { images, partialLayers: [], rows, containers, target, dependent: [] },
    steps,
    ...(history.cutAtCalls.length > 0 ? { cutAtCalls: history.cutAtCalls } : {}),
    expect: {
      present: [],
      absent: [],
      noDangling: true,
      converged: true,
      alwaysPresent: [],
      neverRemoved: [],
    },
    symbols: UNIVERSE_SYMBOLS,
  };
}
