import { describe, expect, it } from 'vitest';
import type { PlanInput } from '../../../core/planner/plan.js';
import { plan } from '../../../core/planner/plan.js';
import type { EngineImage } from '../../../core/model/engine-image.js';
import { container, image, layer, row, service, target } from '../../support/scenario-builder.js';

const base = layer('base', 1000);
const a1 = image('a1', '127.0.0.1:5000/app/main', [base, layer('a1', 10)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [base, layer('a2', 10)]);
const b1 = image('b1', '127.0.0.1:5000/app/worker', [base, layer('b1', 10)]);
// The same manifest under another repository: the same image by digest.
const mirror: EngineImage = { ...a2.engine, repoDigests: [`127.0.0.1:5000/mirror/main@${a2.digest}`] };

function input(parts: Partial<PlanInput>): PlanInput {
  return {
    rows: [],
    images: [],
    containers: [],
    target: null,
    intermediate: false,
    dependent: [],
    deltas: false,
    systemApps: [],
    fetchInFlight: false,
    partialBytes: 0,
    ...parts,
  };
}
const kinds = (p: ReturnType<typeof plan>) => p.steps.map((s) => s.kind);

describe('planner rules', () => {
  it('a target image with an available row needs nothing: the fixed point', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1')],
        images: [a1.engine],
        containers: [container(a1, 1, 'main', 'c1')],
        target: target(service(a1, 1, 'main', 'c1')),
      }),
    );
    expect(p.steps).toEqual([]);
    expect(p.needs.get(a1.id)).toEqual(new Set(['container', 'target']));
  });

  it('an image present by digest in another repository is saved, not fetched', () => {
    const p = plan(input({ images: [mirror], target: target(service(a2, 1, 'main', 'c1')) }));
    expect(p.steps).toEqual([expect.objectContaining({ kind: 'save', dockerImageId: a2.id })]);
  });

  it('the same repository with a different digest is a different image: fetched', () => {
    const p = plan(input({ images: [a1.engine], target: target(service(a2, 1, 'main', 'c1')) }));
    expect(kinds(p)).toEqual(['fetch']);
  });

  it('two services wanting one digest fetch it once in a pass', () => {
    const p = plan(input({ target: target(service(a1, 1, 'main', 'c1'), service(a1, 1, 'side', 'c1')) }));
    expect(kinds(p)).toEqual(['fetch']);
  });

  it("the delta source is the same app's same service's current image, and it is protected", () => {
    const p = plan(
      input({
        deltas: true,
        rows: [row(a1, 1, 'main', 'c1'), row(b1, 1, 'worker', 'c1')],
        images: [a1.engine, b1.engine],
        containers: [container(a1, 1, 'main', 'c1'), container(b1, 1, 'worker', 'c1')],
        target: target(service(a2, 1, 'main', 'c2'), service(b1, 1, 'worker', 'c2')),
      }),
    );
    const fetch = p.steps.find((s) => s.kind === 'fetch');
    expect(fetch).toEqual(expect.objectContaining({ deltaSource: { dockerImageId: a1.id, name: a1.name } }));
    expect(p.needs.get(a1.id)?.has('delta-source')).toBe(true);
  });

  it("a service with no image of its own gets a regular pull, never another service's image as delta source", () => {
    const p = plan(
      input({
        deltas: true,
        rows: [row(b1, 1, 'worker', 'c1')],
        images: [b1.engine],
        containers: [container(b1, 1, 'worker', 'c1')],
        target: target(service(a2, 1, 'main', 'c2'), service(b1, 1, 'worker', 'c1')),
      }),
    );
    const fetch = p.steps.find((s) => s.kind === 'fetch');
    expect(fetch && 'deltaSource' in fetch ? fetch.deltaSource : undefined).toBeUndefined();
  });

  it('download-then-kill: no container is switched before every image of the app is ready', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1'), row(b1, 1, 'worker', 'c1')],
        images: [a1.engine, b1.engine],
        containers: [container(a1, 1, 'main', 'c1'), container(b1, 1, 'worker', 'c1')],
        target: target(service(a2, 1, 'main', 'c2'), service(b1, 1, 'worker', 'c2')),
      }),
    );
    expect(kinds(p)).toEqual(['save', 'fetch']);
  });

  it('delete-then-download: stop the old container first and fetch nothing in that pass', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1')],
        images: [a1.engine],
        containers: [container(a1, 1, 'main', 'c1')],
        target: target(service(a2, 1, 'main', 'c2', 'delete-then-download')),
      }),
    );
    expect(kinds(p)).toEqual(['kill']);
  });

  it('delete-then-download: once the container is gone, the old image is removed before the fetch', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1')],
        images: [a1.engine],
        target: target(service(a2, 1, 'main', 'c2', 'delete-then-download')),
      }),
    );
    expect(kinds(p)).toEqual(['remove', 'fetch']);
  });

  it('download-then-kill: other removals wait until the fetches of the pass are done (no shared layer fetched twice)', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1')],
        images: [a1.engine],
        target: target(service(a2, 1, 'main', 'c2')),
      }),
    );
    expect(kinds(p)).toEqual(['fetch', 'remove']);
  });

  it('a stopped container keeps its image and its row', () => {
    const p = plan(
      input({
        rows: [row(a1, 1, 'main', 'c1')],
        images: [a1.engine],
        containers: [container(a1, 1, 'main', 'c1', false)],
        target: target(service(a2, 1, 'main', 'c2')),
      }),
    );
    expect(p.needs.get(a1.id)).toEqual(new Set(['container']));
    expect(kinds(p)).toEqual(['fetch']);
    expect([...p.keptRows.values()]).toEqual(['container']);
  });

  it('images of dependent apps are kept while the current dependent state lists them', () => {
    const dep = service(b1, 9, 'sensor', 'k1');
    const p = plan(
      input({ rows: [row(b1, 9, 'sensor', 'k1')], images: [b1.engine], target: target(), dependent: [dep] }),
    );
    expect(p.steps).toEqual([]);
    expect(p.needs.get(b1.id)).toEqual(new Set(['dependent']));
  });

  it('an unknown target removes nothing; neither does an intermediate one', () => {
    const state = { rows: [row(a1, 1, 'main', 'c1')], images: [a1.engine] };
    expect(plan(input({ ...state, target: null })).steps).toEqual([]);
    expect(plan(input({ ...state, target: target(), intermediate: true })).steps).toEqual([]);
    expect(kinds(plan(input({ ...state, target: target() })))).toEqual(['remove']);
  });

  it('idle cleanup: dangling images only, only when nothing else is to be done and no pull is in flight', () => {
    const dangling: EngineImage = { ...b1.engine, repoDigests: [] };
    const digestOnly = a1.engine;
    const idle = plan(
      input({
        images: [dangling, digestOnly],
        target: target(),
        rows: [],
        containers: [{ id: 'supervisor', imageId: a1.id, running: true }],
      }),
    );
    expect(idle.steps).toEqual([{ kind: 'cleanup', imageIds: [b1.id] }]);
    expect(plan(input({ images: [dangling], target: target(), fetchInFlight: true })).steps).toEqual([]);
    const busy = plan(input({ images: [dangling], target: target(service(a2, 1, 'main', 'c2')) }));
    expect(kinds(busy)).toEqual(['fetch']);
  });

  it("a managed container's image without a row is adopted (a row saved, nothing downloaded)", () => {
    const p = plan(
      input({ images: [a1.engine], containers: [container(a1, 1, 'main', 'c1')], target: null }),
    );
    expect(p.steps).toEqual([expect.objectContaining({ kind: 'save', dockerImageId: a1.id })]);
  });

  it('a pending row (step 1 done) is reused by the fetch; one with its image present is repaired by save', () => {
    const pending = row(a2, 1, 'main', 'c2', null);
    const fetch = plan(input({ rows: [pending], target: target(service(a2, 1, 'main', 'c2')) }));
    expect(fetch.steps).toEqual([expect.objectContaining({ kind: 'fetch', rowId: pending.id })]);
    const save = plan(
      input({ rows: [pending], images: [a2.engine], target: target(service(a2, 1, 'main', 'c2')) }),
    );
    expect(save.steps).toEqual([
      expect.objectContaining({ kind: 'save', rowId: pending.id, dockerImageId: a2.id }),
    ]);
  });

  it('rows of system apps are left to startup cleanup, never removal candidates', () => {
    const p = plan(
      input({ rows: [row(a1, 99, 'core', 'c1')], images: [a1.engine], target: target(), systemApps: [99] }),
    );
    expect(p.steps.filter((s) => s.kind === 'remove')).toEqual([]);
  });
});
