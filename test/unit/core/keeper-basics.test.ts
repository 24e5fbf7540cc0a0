import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../sim/runner/run-scenario.js';
import { build, container, image, layer, row, service, target } from '../../support/scenario-builder.js';

const base = layer('base', 1_000_000);
const a1 = image('a1', '127.0.0.1:5000/app/main', [base, layer('a1-top', 20_000)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [base, layer('a2-top', 30_000)]);
const b1 = image('b1', '127.0.0.1:5000/app/worker', [base, layer('b1-top', 5_000)]);

describe('keeper on the fakes', () => {
  it('first install downloads every layer once and starts the service', async () => {
    const s = build({
      images: [a1],
      steps: [{ kind: 'apply', target: target(service(a1, 1, 'main', 'c1')), intermediate: false }],
      expect: {
        present: [a1.id],
        bytesDownloadedAtMost: 1_020_000,
        containers: [{ serviceName: 'main', imageId: a1.id }],
      },
    });
    const r = await runScenario(s);
    expect(r.failures, r.trace.join('\n')).toEqual([]);
    expect(r.bytesDownloaded).toBe(1_020_000);
  });

  it('an update downloads only the new layer and removes the old image after the switch', async () => {
    const s = build({
      images: [a1, a2],
      engine: [a1.engine],
      rows: [row(a1, 1, 'main', 'c1')],
      containers: [container(a1, 1, 'main', 'c1')],
      target: target(service(a1, 1, 'main', 'c1')),
      steps: [{ kind: 'apply', target: target(service(a2, 1, 'main', 'c2')), intermediate: false }],
      expect: {
        present: [a2.id],
        absent: [a1.id],
        bytesDownloadedAtMost: 30_000,
        containers: [{ serviceName: 'main', imageId: a2.id }],
      },
    });
    const r = await runScenario(s);
    expect(r.failures, r.trace.join('\n')).toEqual([]);
    expect(r.bytesDownloaded).toBe(30_000);
  });

  it('two services sharing one image: dropping one keeps the image for the other', async () => {
    const s = build({
      images: [a1, b1],
      engine: [a1.engine],
      rows: [row(a1, 1, 'main', 'c1'), row(a1, 1, 'side', 'c1')],
      containers: [container(a1, 1, 'main', 'c1'), container(a1, 1, 'side', 'c1')],
      target: target(service(a1, 1, 'main', 'c1'), service(a1, 1, 'side', 'c1')),
      steps: [{ kind: 'apply', target: target(service(a1, 1, 'main', 'c2')), intermediate: false }],
      expect: {
        present: [a1.id],
        bytesDownloadedAtMost: 0,
        rows: [{ name: a1.name, appId: 1, serviceName: 'main', commit: 'c2', dockerImageId: a1.id }],
      },
    });
    const r = await runScenario(s);
    expect(r.failures, r.trace.join('\n')).toEqual([]);
  });

  it('a power cut after step 1 leaves a row without image that startup cleanup removes', async () => {
    const s = build({
      images: [a1],
      steps: [
        { kind: 'power-cut', at: 'after-row-stored', occurrence: 1 },
        { kind: 'apply', target: target(service(a1, 1, 'main', 'c1')), intermediate: false },
      ],
      expect: { present: [a1.id], bytesDownloadedAtMost: 1_020_000 },
    });
    const r = await runScenario(s);
    expect(r.failures, r.trace.join('\n')).toEqual([]);
    expect(r.cuts).toBe(1);
    expect(r.trace.join('\n')).toContain('startup cleanup');
  });

  it('two rows on one image: dropping one keeps the image; deleting by name (the mutant) is caught', async () => {
    // The image serves a service and a dependent app (which never runs here, so no container guards it).
    const withDependent = (services: ReturnType<typeof service>[]) => ({
      services,
      dependent: [service(a1, 9, 'sensor', 'k1')],
    });
    const s = build({
      images: [a1],
      engine: [a1.engine],
      rows: [row(a1, 1, 'main', 'c1'), row(a1, 9, 'sensor', 'k1')],
      target: withDependent([service(a1, 1, 'main', 'c1')]),
      steps: [{ kind: 'apply', target: withDependent([]), intermediate: false }],
      expect: { present: [a1.id] },
    });
    const correct = await runScenario(s);
    expect(correct.failures, correct.trace.join('\n')).toEqual([]);
    const broken = await runScenario(s, { mutant: 'delete-by-name' });
    expect(broken.failures.join('\n')).toMatch(/S2: deleted image/);
  });
});
