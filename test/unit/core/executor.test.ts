import { describe, expect, it } from 'vitest';
import { FakeEngine } from '../../../adapters/fake-engine/fake-engine.js';
import { FakeRegistry } from '../../../adapters/fake-engine/fake-registry.js';
import { MemoryImageDb } from '../../../adapters/memory/memory-image-db.js';
import { DEFAULT_CONFIG } from '../../../core/config.js';
import type { KeeperConfig } from '../../../core/config.js';
import { idleCleanup } from '../../../core/cleanup/idle-cleanup.js';
import { startupCleanup } from '../../../core/cleanup/startup-cleanup.js';
import { isKeeperError } from '../../../core/errors.js';
import type { EngineImage } from '../../../core/model/engine-image.js';
import type { ImageRow } from '../../../core/model/image-row.js';
import type { CrashPoint } from '../../../core/ports/crash-points.js';
import type { KeeperEvent } from '../../../core/ports/event-sink.js';
import type { KeeperContext } from '../../../core/protocol/keeper-context.js';
import { fetchImage, saveImage } from '../../../core/protocol/pull-protocol.js';
import { removeRow } from '../../../core/protocol/remove-row.js';
import { container, image, layer, row, service } from '../../support/scenario-builder.js';

const base = layer('base', 1000);
const a1 = image('a1', '127.0.0.1:5000/app/main', [base, layer('a1', 100)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [base, layer('a2', 200)]);

function device(
  parts: {
    images?: EngineImage[];
    rows?: ImageRow[];
    containers?: ReturnType<typeof container>[];
    config?: Partial<KeeperConfig>;
  } = {},
) {
  const engine = new FakeEngine(new FakeRegistry([a1.registry, a2.registry]), {
    images: parts.images ?? [],
    layers: [],
    containers: parts.containers ?? [],
    leakedBytes: 0,
  });
  const db = new MemoryImageDb({ rows: parts.rows ?? [], nextId: 100, target: null });
  const reached: string[] = [];
  const events: KeeperEvent[] = [];
  const ctx: KeeperContext = {
    db,
    targets: db,
    engine,
    containers: engine,
    clock: { now: () => 0, sleep: async () => undefined },
    events: { emit: (e) => events.push(e) },
    crashPoints: { reach: (p: CrashPoint, d: string) => void reached.push(`${p} ${d}`) },
    config: { ...DEFAULT_CONFIG, retryBaseMs: 1, ...parts.config },
  };
  return { engine, db, ctx, reached, events };
}

describe('the pull protocol', () => {
  it('stores the row, pulls, then writes the image ID, in that order', async () => {
    const d = device();
    const id = await fetchImage(d.ctx, service(a1, 1, 'main', 'c1'), undefined, undefined);
    expect(id).toBe(a1.id);
    expect(d.reached.map((r) => r.split(' ')[0])).toEqual([
      'after-row-stored',
      'mid-pull',
      'mid-pull',
      'after-image-complete',
      'after-id-written',
    ]);
    const rows = await d.db.listRows();
    expect(rows).toEqual([expect.objectContaining({ name: a1.name, dockerImageId: a1.id })]);
  });

  it('a cut after step 1 leaves a pending row and no image; the next fetch reuses the row and the layers', async () => {
    const d = device();
    const cutting = {
      ...d.ctx,
      crashPoints: {
        reach: (p: CrashPoint) => {
          if (p === 'mid-pull') throw new Error('cut');
        },
      },
    };
    await expect(fetchImage(cutting, service(a1, 1, 'main', 'c1'), undefined, undefined)).rejects.toThrow(
      'cut',
    );
    const [pending] = await d.db.listRows();
    expect(pending?.dockerImageId).toBeNull();
    expect(d.engine.counters.bytesDownloaded).toBe(1000);
    await fetchImage(d.ctx, service(a1, 1, 'main', 'c1'), undefined, pending?.id);
    expect(d.engine.counters.bytesDownloaded).toBe(1100);
    expect(await d.db.listRows()).toEqual([
      expect.objectContaining({ id: pending?.id, dockerImageId: a1.id }),
    ]);
  });

  it('transient registry errors are retried with backoff and reported; a 404 is not retried', async () => {
    const d = device();
    d.engine.injectFault('pull', 'registry-500', 2);
    await fetchImage(d.ctx, service(a1, 1, 'main', 'c1'), undefined, undefined);
    expect(d.events.filter((e) => e.type === 'retry')).toHaveLength(2);
    const f = device();
    f.engine.injectFault('pull', 'registry-404', 1);
    await expect(fetchImage(f.ctx, service(a1, 1, 'main', 'c1'), undefined, undefined)).rejects.toSatisfy(
      (e) => isKeeperError(e, 'REGISTRY_ERROR'),
    );
    expect(f.events.filter((e) => e.type === 'retry')).toHaveLength(0);
    expect(await f.db.listRows()).toEqual([expect.objectContaining({ dockerImageId: null })]);
  });

  it('a delta whose source is gone falls back to a regular pull', async () => {
    const d = device({ config: { deltas: true } });
    const id = await fetchImage(
      d.ctx,
      service(a2, 1, 'main', 'c2'),
      { dockerImageId: a1.id, name: a1.name },
      undefined,
    );
    expect(id).toBe(a2.id);
    expect(d.engine.counters.deltas).toBe(1);
    expect(d.engine.counters.pulls).toBe(1);
  });

  it('save writes one row with the ID of the image present by digest, or repairs a pending row', async () => {
    const d = device({ images: [a1.engine], rows: [row(a1, 1, 'main', 'c1', null)] });
    const [pending] = await d.db.listRows();
    await saveImage(d.ctx, service(a1, 1, 'main', 'c1'), a1.id, pending?.id);
    await saveImage(d.ctx, service(a1, 1, 'side', 'c1'), a1.id, undefined);
    expect((await d.db.listRows()).map((r) => [r.serviceName, r.dockerImageId])).toEqual([
      ['main', a1.id],
      ['side', a1.id],
    ]);
    expect(d.engine.counters.pulls).toBe(0);
  });
});

describe('removal with reference counting', () => {
  it('another row on the same image: only the row goes, the image stays', async () => {
    const r1 = row(a1, 1, 'main', 'c1');
    const r2 = row(a1, 1, 'side', 'c1');
    const d = device({ images: [a1.engine], rows: [r1, r2] });
    await removeRow(d.ctx, r1);
    expect(await d.engine.inspectImage(a1.id)).not.toBeNull();
    expect((await d.db.listRows()).map((r) => r.id)).toEqual([r2.id]);
  });

  it('the last row: the engine image goes first, then the row', async () => {
    const r1 = row(a1, 1, 'main', 'c1');
    const d = device({ images: [a1.engine], rows: [r1] });
    const cutting = {
      ...d.ctx,
      crashPoints: {
        reach: (p: CrashPoint) => {
          if (p === 'between-engine-delete-and-row-delete') throw new Error('cut');
        },
      },
    };
    await expect(removeRow(cutting, r1)).rejects.toThrow('cut');
    expect(await d.engine.inspectImage(a1.id)).toBeNull();
    expect(await d.db.listRows()).toHaveLength(1);
  });

  it('an image a stopped container uses is never deleted; the row goes', async () => {
    const r1 = row(a1, 1, 'main', 'c1');
    const d = device({
      images: [a1.engine],
      rows: [r1],
      containers: [container(a1, 1, 'main', 'c1', false)],
    });
    await removeRow(d.ctx, r1);
    expect(await d.engine.inspectImage(a1.id)).not.toBeNull();
    expect(await d.db.listRows()).toEqual([]);
  });

  it("an operator's tag in another repository keeps the image: only our references go", async () => {
    const r1 = row(a1, 1, 'main', 'c1');
    const d = device({ images: [{ ...a1.engine, repoTags: ['127.0.0.1:5000/ops/debug:mine'] }], rows: [r1] });
    await removeRow(d.ctx, r1);
    const left = await d.engine.inspectImage(a1.id);
    expect(left?.repoTags).toEqual(['127.0.0.1:5000/ops/debug:mine']);
    expect(left?.repoDigests).toEqual([]);
  });
});

describe('startup cleanup', () => {
  it('repairs a pending row whose image is present by digest, deletes rows without images and rows of system apps', async () => {
    const pending = row(a1, 1, 'main', 'c2', null);
    const orphan = row(a2, 1, 'main', 'c1');
    const lost = row(a2, 1, 'other', 'c1', null);
    const system = row(a1, 99, 'core', 'c1');
    const d = device({
      images: [a1.engine],
      rows: [pending, orphan, lost, system],
      config: { systemApps: [99] },
    });
    const result = await startupCleanup(d.ctx);
    expect(result.repaired).toHaveLength(1);
    expect(result.deleted).toHaveLength(3);
    expect(await d.db.listRows()).toEqual([
      expect.objectContaining({ id: pending.id, dockerImageId: a1.id }),
    ]);
    expect(d.engine.counters.removalAttempts).toEqual([]);
  });
});

describe('idle cleanup', () => {
  it('removes the given dangling images and the layers interrupted pulls left', async () => {
    const dangling: EngineImage = { ...a2.engine, repoDigests: [] };
    const d = device({ images: [dangling] });
    const removed = await idleCleanup(d.ctx, [a2.id]);
    expect(removed).toHaveLength(1);
    expect(await d.engine.diskUsage()).toEqual({ images: 0, partial: 0 });
  });
});
