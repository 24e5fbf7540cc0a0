import { describe, expect, it } from 'vitest';
import type { EngineImage } from '../core/model/engine-image.js';
import { short } from '../core/model/plan-step.js';
import type { NeedReason } from '../core/model/plan-step.js';
import { container, image, layer, row, service, target } from '../test/support/scenario-builder.js';
import { buildStatus, renderStatus } from './status-command.js';

const a1 = image('a1', '127.0.0.1:5000/app/main', [layer('a1', 1024 * 1024)]);
const a2 = image('a2', '127.0.0.1:5000/app/main', [layer('a2', 10)]);
const operator: EngineImage = {
  id: `sha256:${'e'.repeat(64)}`,
  repoTags: ['operator/tool:1'],
  repoDigests: [],
  layers: [],
  size: 2048,
};
const dangling: EngineImage = {
  id: `sha256:${'d'.repeat(64)}`,
  repoTags: [],
  repoDigests: [],
  layers: [],
  size: 10,
};

describe('status', () => {
  const input = {
    dbPath: '/var/lib/image-keeper/images.sqlite',
    dbExists: true,
    engine: 'unix:///run/engine.sock',
    rows: [row(a1, 7, 'main', 'c1aaaaaaaaaa'), row(a2, 7, 'main', 'c2bbbbbbbbbb', null)],
    target: target(service(a2, 7, 'main', 'c2bbbbbbbbbb')),
    images: [a1.engine, operator, dangling],
    containers: [
      container(a1, 7, 'main', 'c1aaaaaaaaaa', true),
      { id: 'f'.repeat(64), imageId: operator.id, running: false },
    ],
    disk: { images: 3 * 1024 * 1024, partial: 0 },
  };
  const needs = new Map<string, Set<NeedReason>>([
    [a1.id, new Set<NeedReason>(['container'])],
    [operator.id, new Set<NeedReason>(['container'])],
  ]);
  const report = buildStatus(input, {
    startup: { repaired: [], deleted: [`${a2.name} (no image)`] },
    plan: {
      steps: [{ kind: 'fetch', image: service(a2, 7, 'main', 'c2bbbbbbbbbb') }],
      needs,
      keptRows: new Map(),
    },
  });

  it('marks images managed, foreign or dangling, with why each is needed (running or stopped container)', () => {
    expect(report.images.map((i) => [short(i.id), i.mark, i.needs])).toEqual([
      [short(a1.id), 'managed', ['running container']],
      [short(operator.id), 'foreign', ['stopped container']],
      [short(dangling.id), 'dangling', []],
    ]);
    expect(report.nextSteps).toEqual([`fetch ${a2.name} for 7/main@c2bbbbbbbbbb`]);
  });

  it('renders rows, images, containers, the pending startup cleanup, next steps and disk use as text', () => {
    const text = renderStatus(report);
    expect(text).toEqual([
      'state DB: /var/lib/image-keeper/images.sqlite (2 row(s))',
      'engine:   unix:///run/engine.sock',
      'target:   1 service(s), 0 dependent image(s)',
      `  7/main@c2bbbbbb = ${a2.name}`,
      'rows:',
      `  #${input.rows[0]!.id} 7/main@c1aaaaaa ${a1.name} -> ${short(a1.id)}`,
      `  #${input.rows[1]!.id} 7/main@c2bbbbbb ${a2.name} -> pending (pull not finished)`,
      'images:',
      `  ${short(a1.id)} managed    1.0 MiB  ${a1.name}  [needed: running container]`,
      `  ${short(operator.id)} foreign    2.0 KiB  operator/tool:1  [needed: stopped container]`,
      `  ${short(dangling.id)} dangling      10 B  <none>  [idle cleanup removes it]`,
      'containers:',
      `  main_7 7/main@c1aaaaaa on ${short(a1.id)} running`,
      `  ffffffffffff foreign on ${short(operator.id)} stopped`,
      'startup cleanup at the next start:',
      `  delete row ${a2.name} (no image)`,
      'next steps:',
      `  1. fetch ${a2.name} for 7/main@c2bbbbbbbbbb`,
      'disk:     images 3.0 MiB, partial pulls 0 B',
    ]);
  });

  it('says when there is no DB or no target yet', () => {
    const empty = buildStatus(
      { ...input, dbExists: false, rows: [], target: null, images: [], containers: [] },
      { startup: { repaired: [], deleted: [] }, plan: { steps: [], needs: new Map(), keptRows: new Map() } },
    );
    const text = renderStatus(empty);
    expect(text).toContain('state DB: /var/lib/image-keeper/images.sqlite (does not exist yet)');
    expect(text).toContain('target:   none accepted yet (an unknown target removes nothing)');
    expect(text).toContain('next steps: none (converged)');
  });
});
