import { describe, expect, it } from 'vitest';
import { FakeEngine } from '../adapters/fake-engine/fake-engine.js';
import { FakeRegistry } from '../adapters/fake-engine/fake-registry.js';
import { MemoryImageDb } from '../adapters/memory/memory-image-db.js';
import type { EngineImage } from '../core/model/engine-image.js';
import { short } from '../core/model/plan-step.js';
import { ImageKeeper } from '../core/keeper.js';
import { NO_CRASH_POINTS } from '../core/ports/crash-points.js';
import { container, image, layer, row, service, target } from '../test/support/scenario-builder.js';
import { previewCleanup } from './cleanup-preview.js';
import { describeCleanup } from './cleanup-command.js';
import type { Device } from './device.js';
import { REAL_CLOCK } from './device.js';

const base = layer('base', 100);
const a1 = image('a1', '127.0.0.1:5000/app/main', [base, layer('a1', 10)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [base, layer('a2', 10)]);
const gone = image('gone', '127.0.0.1:5000/app/old', [base, layer('gone', 10)]);
const dangling: EngineImage = {
  id: `sha256:${'d'.repeat(64)}`,
  repoTags: [],
  repoDigests: [],
  layers: [base],
  size: 100,
};
const operator: EngineImage = {
  id: `sha256:${'e'.repeat(64)}`,
  repoTags: ['operator/tool:1'],
  repoDigests: [],
  layers: [base],
  size: 100,
};

function fakeDevice(): { device: Device; engine: FakeEngine; db: MemoryImageDb } {
  const engine = new FakeEngine(new FakeRegistry([a1.registry, a2.registry]), {
    images: [a1.engine, dangling, operator],
    layers: [],
    containers: [container(a1, 1, 'main', 'c1')],
    leakedBytes: 0,
  });
  const rows = [row(a1, 1, 'main', 'c1'), row(a2, 1, 'main', 'c0', null), row(gone, 1, 'old', 'c0')];
  const db = new MemoryImageDb({ rows, nextId: 100, target: target(service(a1, 1, 'main', 'c1')) });
  const keeperOver: Device['keeperOver'] = (ports) => new ImageKeeper({ ...ports, clock: REAL_CLOCK });
  const device: Device = {
    settings: {
      dbPath: '/db',
      engineUrl: 'unix:///e.sock',
      engineFrom: '--engine',
      recoverDb: false,
      warnings: [],
    },
    engine,
    state: db,
    dbExisted: true,
    recovered: null,
    crashPoints: NO_CRASH_POINTS,
    keeper: keeperOver({ db, targets: db, engine, containers: engine }),
    keeperOver,
  };
  return { device, engine, db };
}

describe('cleanup --dry-run', () => {
  it('runs the core cleanups over a copy and a pretend engine: the same lines as the real run, and nothing changed', async () => {
    const { device, engine, db } = fakeDevice();
    const before = { engine: JSON.stringify(engine.durableState()), db: JSON.stringify(db.durableState()) };
    const preview = await previewCleanup(device, await db.listRows(), await db.readTarget());
    expect(JSON.stringify(engine.durableState())).toBe(before.engine);
    expect(JSON.stringify(db.durableState())).toBe(before.db);
    expect(engine.counters.removalAttempts).toEqual([]);
    const dry = describeCleanup(preview.startup, preview.idleRemoved, preview.idleSkipped, true, true);
    expect(dry).toEqual([
      `startup cleanup: would delete row ${a2.name} (no image)`,
      `startup cleanup: would delete row ${gone.name} (image ${short(gone.id)} gone)`,
      `idle cleanup: would remove image ${short(dangling.id)} (dangling: no tag, no digest, no row, no container)`,
    ]);
    // The next steps are planned over the state startup cleanup leaves: nothing but the idle cleanup.
    expect(preview.plan.steps.map((s) => s.kind)).toEqual(['cleanup']);

    const startup = await device.keeper.startup();
    const removed = await device.keeper.idleTick();
    expect(describeCleanup(startup, removed, undefined, true, false)).toEqual(
      dry.map((line) => line.replace('would delete', 'deleted').replace('would remove', 'removed')),
    );
    expect(
      engine
        .durableState()
        .images.map((i) => i.id)
        .sort(),
    ).toEqual([a1.id, operator.id].sort());
  });

  it('says why idle cleanup does not run: other actions pending, or no target yet', () => {
    const none = { repaired: [], deleted: [] };
    expect(describeCleanup(none, [], 'other image actions are pending', true, true)).toEqual([
      'idle cleanup: would be skipped (other image actions are pending; apply runs them)',
    ]);
    expect(describeCleanup(none, [], undefined, false, false)).toEqual([
      'idle cleanup: nothing removed: the device has no target yet, and an unknown target removes nothing',
    ]);
    expect(describeCleanup(none, [], undefined, true, true)).toEqual(['nothing to clean up']);
    expect(
      describeCleanup(
        { repaired: ['reg/x@sha256:1 -> 0123456789ab'], deleted: [] },
        [],
        undefined,
        true,
        false,
      ),
    ).toEqual([
      'startup cleanup: repaired row reg/x@sha256:1 -> 0123456789ab (its image is on the engine by digest: no download)',
    ]);
  });
});
