import { describe, expect, it } from 'vitest';
import type { Container } from '../core/model/container.js';
import type { EngineImage } from '../core/model/engine-image.js';
import { runScenario } from '../sim/runner/run-scenario.js';
import { loadScenarioText } from '../sim/scenario/load-scenario.js';
import { writeScenario } from '../sim/scenario/write-scenario.js';
import { container, image, layer, row, service, target } from '../test/support/scenario-builder.js';
import type { DeviceSnapshot } from './capture-scenario.js';
import { captureScenario } from './capture-scenario.js';

const base = layer('base', 0);
const a1 = image('a1', '127.0.0.1:5000/app/main', [base, layer('a1', 0)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [base, layer('a2', 0)]);
const w = image('w', '127.0.0.1:5000/app/worker', [base, layer('w', 0)]);
const operator: EngineImage = {
  id: `sha256:${'0'.repeat(63)}1`,
  repoTags: ['operator/tool:1'],
  repoDigests: [],
  layers: [base],
  size: 0,
};
const dangling: EngineImage = {
  id: `sha256:${'0'.repeat(63)}2`,
  repoTags: [],
  repoDigests: [],
  layers: [base],
  size: 0,
};
const foreignContainer: Container = { id: 'f00d', imageId: operator.id, running: false };
const origin = {
  host: 'gateway 01',
  time: '2026-01-01T00:00:00.000Z',
  db: '/var/lib/image-keeper/images.sqlite',
  engine: 'unix:///run/docker.sock',
};

/** A device cut after step 1 of the update to a2: its row is pending, a2 is not on the engine. */
const cutMidUpdate: DeviceSnapshot = {
  rows: [row(a1, 1, 'main', 'c1'), row(w, 1, 'worker', 'c1'), row(a2, 1, 'main', 'c2', null)],
  images: [a1.engine, w.engine, operator, dangling],
  containers: [container(a1, 1, 'main', 'c1'), container(w, 1, 'worker', 'c1'), foreignContainer],
  target: target(service(a2, 1, 'main', 'c2'), service(w, 1, 'worker', 'c2')),
  origin,
};

describe('captureScenario', () => {
  it('starts the fakes in the device state: rows, engine images, containers and the persisted target', () => {
    const s = captureScenario(cutMidUpdate, '/tmp/capture.yaml');
    expect(s.name).toBe('capture-gateway-01');
    expect(s.description).toContain('on gateway 01 at 2026-01-01T00:00:00.000Z');
    expect(s.initial).toEqual({
      images: cutMidUpdate.images,
      partialLayers: [],
      rows: cutMidUpdate.rows,
      containers: cutMidUpdate.containers,
      target: cutMidUpdate.target,
      dependent: [],
    });
    expect(s.config).toEqual({ deltas: false, engineDeltas: false, systemApps: [] });
    expect(s.steps).toEqual([{ kind: 'restart' }]);
    expect(s.expect).toMatchObject({
      converged: true,
      noDangling: false,
      present: [],
      absent: [],
      neverRemoved: [],
    });
  });

  it('the registry serves what the engine holds by digest, and a placeholder for target images it does not hold', () => {
    const { registry } = captureScenario(cutMidUpdate, 'c.yaml');
    expect(registry.map((r) => `${r.repository}@${r.digest}`)).toEqual([a1.name, w.name, a2.name]);
    expect(registry[0]).toEqual({
      repository: a1.repository,
      digest: a1.digest,
      imageId: a1.id,
      layers: a1.layers,
      tags: [],
    });
    const placeholder = registry[2]!;
    expect(placeholder.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(placeholder.imageId).not.toBe(a2.id);
    expect(placeholder.layers).toEqual([{ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), size: 0 }]);
  });

  it('tags: an engine tag goes with its repository digest; a tag target not on the engine gets a placeholder', () => {
    const tagged: EngineImage = {
      ...a1.engine,
      repoTags: ['127.0.0.1:5000/app/main:v1', 'operator/main:mine'],
    };
    const snapshot: DeviceSnapshot = {
      ...cutMidUpdate,
      images: [tagged],
      target: {
        services: [
          { ...service(a1, 1, 'main', 'c1'), name: '127.0.0.1:5000/app/main:v1' },
          { ...service(w, 1, 'worker', 'c1'), name: '127.0.0.1:5000/app/worker:v3' },
        ],
        dependent: [],
      },
    };
    const { registry } = captureScenario(snapshot, 'c.yaml');
    expect(registry.map((r) => [r.repository, r.tags, r.imageId === a1.id])).toEqual([
      ['127.0.0.1:5000/app/main', ['v1'], true],
      ['127.0.0.1:5000/app/worker', ['v3'], false],
    ]);
  });

  it('writes a file that loads back and replays to convergence on the fakes, keeping the operator image', async () => {
    const text = writeScenario(captureScenario(cutMidUpdate, '/tmp/capture.yaml'));
    const loaded = loadScenarioText(text, '/tmp/capture.yaml', '/tmp');
    const result = await runScenario(loaded, { trace: false });
    expect(result.failures).toEqual([]);
    const engine = result.device.engine.durableState();
    const rows = result.device.db
      .peek()
      .rows.map((r) => `${r.serviceName}@${r.commit} ${r.name}`)
      .sort();
    expect(rows).toEqual([`main@c2 ${a2.name}`, `worker@c2 ${w.name}`]);
    const ids = engine.images.map((i) => i.id);
    expect(ids).toContain(operator.id);
    expect(ids).not.toContain(a1.id);
    expect(ids).not.toContain(dangling.id);
    expect(engine.containers.map((c) => c.id)).toContain('f00d');
  });
});
