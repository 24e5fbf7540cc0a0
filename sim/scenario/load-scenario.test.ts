import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { isKeeperError } from '../../core/errors.js';
import { deriveImageId, deriveReleaseId, deriveServiceId } from '../../core/target/derived-ids.js';
import { loadScenario, loadScenarios, loadScenarioText } from './load-scenario.js';
import { configIdOf, layerDigestOf, manifestDigestOf } from './symbols.js';

const EXAMPLE = `name: update-sharing-layers
description: Only the new top layer is downloaded.
source: balena-os/balena-supervisor#1616
config: { engineDeltas: true, diskLimit: 5000000 }
layers: { base: 3000000, a1-top: 20000, a2-top: 25000 }
images:
  a1: { repo: reg.local/app/main, layers: [base, a1-top] }
  a2: { repo: reg.local/app/main, layers: [base, a2-top], tags: [v2] }
  x:  { repo: reg.local/app/other, layers: [base] }
  y:  { repo: reg.local/app/copy, layers: [base], id: x }
  s_old: { repo: reg.local/sv/h1, layers: [base] }
registry: [a1, a2]
initial:
  engine:
    images: [a1, { image: s_old, references: none }, x, { image: y, references: both }]
    partialLayers: [a2-top]
  rows:
    - { image: a1, app: 1, service: main, commit: c1 }
    - { image: a2, app: 1, service: main, commit: c2, id: null }
  containers:
    - { service: main, app: 1, commit: c1, image: a1, locked: true }
    - { id: supervisor, image: s_old, foreign: true, running: false }
steps:
  - apply: { apps: [{ id: 1, commit: c2, services: [{ name: main, image: a2 }] }] }
  - power-cut: { at: after-row-stored, match: a2, occurrence: 2, resume: false }
  - restart
  - idle: {}
  - wipe-db:
  - idle-during-pull: { image: a2, afterLayers: 1 }
  - container: { stop: main }
  - container: { lock: { service: main, app: 1 } }
  - engine-fault: { op: pull, error: registry-500, times: 2, image: a2 }
  - engine-remove-image: y
  - delete-rows: { service: main }
  - apply: { intermediate: {} }
  - power-cut: { at: mid-idle-cleanup, match: x }
  - power-cut: { at: after-save, matchText: a1 }
  - idle-during-pull: {}
expect:
  present: [a2]
  absent: [a1]
  rows: [{ image: a2, app: 1, service: main, commit: c2 }]
  bytesDownloadedAtMost: 25000
  containers: [{ service: main, image: a2, running: true }]
  alwaysPresent: [x]
  neverRemoved: [s_old]
`;

const A1_REF = `reg.local/app/main@${manifestDigestOf('a1')}`;
const A2_REF = `reg.local/app/main@${manifestDigestOf('a2')}`;
const BASE = { digest: layerDigestOf('base'), size: 3_000_000 };
const A1_TOP = { digest: layerDigestOf('a1-top'), size: 20_000 };
const A2_TOP = { digest: layerDigestOf('a2-top'), size: 25_000 };
const MAIN = deriveServiceId('main');

function load(text: string, file = 's.yaml') {
  return loadScenarioText(text, file, resolve('scenarios/field'));
}

/** The one-line messages of an INVALID_SCENARIO error. */
function problems(text: string, file = 's.yaml'): string[] {
  try {
    load(text, file);
  } catch (error) {
    expect(isKeeperError(error, 'INVALID_SCENARIO')).toBe(true);
    return (error as Error).message.split('\n');
  }
  throw new Error('expected INVALID_SCENARIO');
}

describe('loadScenarioText: a valid scenario', () => {
  const s = load(EXAMPLE);

  it('keeps the header and fills config defaults', () => {
    expect(s.file).toBe('s.yaml');
    expect([s.name, s.description, s.source]).toEqual([
      'update-sharing-layers',
      'Only the new top layer is downloaded.',
      'balena-os/balena-supervisor#1616',
    ]);
    expect(s.config).toEqual({ deltas: false, engineDeltas: true, diskLimit: 5_000_000, systemApps: [] });
  });

  it('derives digests, image IDs and layers from symbols', () => {
    expect(s.registry).toEqual([
      {
        repository: 'reg.local/app/main',
        digest: manifestDigestOf('a1'),
        imageId: configIdOf('a1'),
        layers: [BASE, A1_TOP],
        tags: [],
      },
      {
        repository: 'reg.local/app/main',
        digest: manifestDigestOf('a2'),
        imageId: configIdOf('a2'),
        layers: [BASE, A2_TOP],
        tags: ['v2'],
      },
    ]);
  });

  it('builds engine images, merging symbols that share an image ID', () => {
    expect(s.initial.images).toEqual([
      { id: configIdOf('a1'), repoTags: [], repoDigests: [A1_REF], layers: [BASE, A1_TOP], size: 3_020_000 },
      { id: configIdOf('s_old'), repoTags: [], repoDigests: [], layers: [BASE], size: 3_000_000 },
      {
        id: configIdOf('x'),
        repoTags: ['reg.local/app/copy:latest'],
        repoDigests: [
          `reg.local/app/other@${manifestDigestOf('x')}`,
          `reg.local/app/copy@${manifestDigestOf('y')}`,
        ],
        layers: [BASE],
        size: 3_000_000,
      },
    ]);
    expect(s.initial.partialLayers).toEqual([A2_TOP]);
  });

  it('gives rows, containers and targets the same derived IDs', () => {
    expect(s.initial.rows).toEqual([
      {
        id: 1,
        name: A1_REF,
        appId: 1,
        serviceId: MAIN,
        serviceName: 'main',
        imageId: deriveImageId(1, MAIN, 'c1'),
        releaseId: deriveReleaseId('c1'),
        commit: 'c1',
        dockerImageId: configIdOf('a1'),
      },
      {
        id: 2,
        name: A2_REF,
        appId: 1,
        serviceId: MAIN,
        serviceName: 'main',
        imageId: deriveImageId(1, MAIN, 'c2'),
        releaseId: deriveReleaseId('c2'),
        commit: 'c2',
        dockerImageId: null,
      },
    ]);
    expect(s.initial.containers).toEqual([
      {
        id: 'main_1_c1',
        imageId: configIdOf('a1'),
        running: true,
        service: { appId: 1, serviceId: MAIN, serviceName: 'main', commit: 'c1', locked: true },
      },
      { id: 'supervisor', imageId: configIdOf('s_old'), running: false },
    ]);
    const apply = s.steps[0];
    expect(apply).toEqual({
      kind: 'apply',
      intermediate: false,
      line: 24,
      target: {
        services: [
          {
            name: A2_REF,
            appId: 1,
            serviceId: MAIN,
            serviceName: 'main',
            imageId: deriveImageId(1, MAIN, 'c2'),
            releaseId: deriveReleaseId('c2'),
            commit: 'c2',
            strategy: 'download-then-kill',
          },
        ],
        dependent: [],
      },
    });
    // The row for (app 1, main, c2) and the target service agree on every ID.
    const row = s.initial.rows[1];
    const service = apply?.kind === 'apply' ? apply.target.services[0] : undefined;
    expect([row?.serviceId, row?.imageId, row?.releaseId]).toEqual([
      service?.serviceId,
      service?.imageId,
      service?.releaseId,
    ]);
  });

  it('compiles every step kind with its source line', () => {
    expect(s.steps.slice(1)).toEqual([
      {
        kind: 'power-cut',
        at: 'after-row-stored',
        match: manifestDigestOf('a2'),
        occurrence: 2,
        resume: false,
        line: 25,
      },
      { kind: 'restart', line: 26 },
      { kind: 'idle', line: 27 },
      { kind: 'wipe-db', line: 28 },
      { kind: 'idle-during-pull', ref: A2_REF, afterLayers: 1, line: 29 },
      { kind: 'container', action: 'stop', match: { serviceName: 'main' }, line: 30 },
      { kind: 'container', action: 'lock', match: { serviceName: 'main', appId: 1 }, line: 31 },
      { kind: 'engine-fault', op: 'pull', error: 'registry-500', times: 2, ref: A2_REF, line: 32 },
      { kind: 'engine-remove-image', imageId: configIdOf('x'), line: 33 },
      { kind: 'delete-rows', match: { serviceName: 'main' }, line: 34 },
      { kind: 'apply', target: { services: [], dependent: [] }, intermediate: true, line: 35 },
      { kind: 'power-cut', at: 'mid-idle-cleanup', match: configIdOf('x'), occurrence: 1, line: 36 },
      { kind: 'power-cut', at: 'after-save', match: 'a1', occurrence: 1, line: 37 },
      { kind: 'idle-during-pull', ref: '', afterLayers: 0, line: 38 },
    ]);
  });

  it('compiles expectations with defaults', () => {
    expect(s.expect).toEqual({
      present: [configIdOf('a2')],
      absent: [configIdOf('a1')],
      rows: [{ name: A2_REF, appId: 1, serviceName: 'main', commit: 'c2', dockerImageId: configIdOf('a2') }],
      bytesDownloadedAtMost: 25_000,
      noDangling: true,
      converged: true,
      containers: [{ serviceName: 'main', imageId: configIdOf('a2'), running: true }],
      alwaysPresent: [configIdOf('x')],
      neverRemoved: [configIdOf('s_old')],
    });
  });

  it('maps the sha256 values it uses back to their symbols', () => {
    expect(s.symbols[manifestDigestOf('a1')]).toBe('a1');
    expect(s.symbols[configIdOf('a1')]).toBe('a1');
    expect(s.symbols[configIdOf('x')]).toBe('x');
    expect(s.symbols[manifestDigestOf('y')]).toBe('y');
    expect(s.symbols[layerDigestOf('a2-top')]).toBe('a2-top');
    // y's own config ID is never used: y shares x's.
    expect(s.symbols[configIdOf('y')]).toBeUndefined();
  });
});

describe('loadScenarioText: other valid forms', () => {
  it('reads a balena target file relative to the scenario', () => {
    const s = load(`name: f
steps:
  - apply: { file: ../targets/balena-update.json }
  - apply: { intermediate: { file: ../targets/balena-first-install.json } }
`);
    const [update, install] = s.steps;
    expect(
      update?.kind === 'apply' && update.target.services.map((x) => [x.serviceName, x.releaseId]),
    ).toEqual([
      ['main', 220002],
      ['worker', 220002],
    ]);
    expect(install?.kind === 'apply' && install.intermediate).toBe(true);
  });

  it('takes full references, full IDs, explicit digests and raw engine images', () => {
    const digest = 'sha256:' + '1'.repeat(64);
    const id = 'sha256:' + '2'.repeat(64);
    const s = load(`name: full
layers: { "sha256:${'3'.repeat(64)}": 10 }
images:
  p: { repo: reg.local/p, digest: "${digest}", id: "${id}", layers: ["sha256:${'3'.repeat(64)}"] }
  q: { repo: reg.local/q, id: z }
initial:
  engine:
    images:
      - { id: "${id}", layers: [], repoTags: [reg.local/p:1], repoDigests: ["reg.local/p@${digest}"] }
  rows: [{ image: "reg.local/other:7", app: 2, service: w, serviceId: 5, commit: k, id: z, imageId: 50, releaseId: 51, rowId: 9 }]
expect: { present: [p, z, "${id}"] }
`);
    expect(s.registry.map((r) => [r.digest, r.imageId])).toEqual([
      [digest, id],
      [manifestDigestOf('q'), configIdOf('z')],
    ]);
    expect(s.initial.images).toEqual([
      { id, repoTags: ['reg.local/p:1'], repoDigests: [`reg.local/p@${digest}`], layers: [], size: 0 },
    ]);
    expect(s.initial.rows).toEqual([
      {
        id: 9,
        name: 'reg.local/other:7',
        appId: 2,
        serviceId: 5,
        serviceName: 'w',
        imageId: 50,
        releaseId: 51,
        commit: 'k',
        dockerImageId: configIdOf('z'),
      },
    ]);
    expect(s.expect.present).toEqual([id, configIdOf('z'), id]);
    expect(s.symbols[digest]).toBeUndefined();
  });

  it('accepts JSON scenario files with the same schema', () => {
    const s = load(
      '{ "name": "j", "images": { "a": { "repo": "reg.local/a" } }, "steps": ["restart", { "idle": {} }] }',
      's.json',
    );
    expect(s.steps).toEqual([
      { kind: 'restart', line: 1 },
      { kind: 'idle', line: 1 },
    ]);
    expect(s.registry[0]?.digest).toBe(manifestDigestOf('a'));
  });
});

describe('loadScenarioText: errors are one line each, with position', () => {
  it('reports YAML syntax errors', () => {
    expect(problems('name: x\nsteps:\n  - apply: [1, 2\n  - idle\n')).toEqual([
      's.yaml:4:3: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(problems('name: x\nname: y\n')).toEqual(['s.yaml:2:1: Map keys must be unique']);
  });

  it('reports unknown keys at the key', () => {
    expect(problems('name: x\nimages:\n  a: { repo: reg.local/a, colour: red }\n')).toEqual([
      "s.yaml:3:27: unknown key 'colour' (at images.a.colour)",
    ]);
    expect(problems('name: x\nsteps:\n  - reboot: {}\n')).toEqual([
      "s.yaml:3:5: unknown key 'reboot' (at steps[0].reboot)",
    ]);
  });

  it('reports missing keys, wrong types and bad enum values', () => {
    expect(problems('description: no name\n')).toEqual(["s.yaml:1:1: missing required key 'name' (at name)"]);
    expect(problems('name: x\nlayers: { base: big }\n')).toEqual([
      's.yaml:2:17: invalid input: expected number, received string (at layers.base)',
    ]);
    const [line] = problems('name: x\nsteps:\n  - power-cut: { at: nowhere }\n');
    expect(line).toMatch(
      /^s\.yaml:3:22: invalid option: expected one of "after-row-stored"\|.* \(at steps\[0\]\.power-cut\.at\)$/,
    );
    expect(problems('name: x\ninitial:\n  rows: [{ image: a, app: 1, service: m, commit: 7 }]\n')).toEqual([
      's.yaml:3:50: commit must be a string (quote a numeric commit) (at initial.rows[0].commit)',
    ]);
  });

  it('reports undefined symbols where they are used', () => {
    expect(
      problems(`name: x
layers: { base: 1 }
images:
  a1: { repo: reg.local/a, layers: [base, top] }
registry: [a1, a9]
initial:
  rows: [{ image: a9, app: 1, service: main, commit: c1 }]
steps:
  - apply: { apps: [{ id: 1, commit: c2, services: [{ name: main, image: b2 }] }] }
  - engine-remove-image: zz
expect:
  present: [a1, nope]
`),
    ).toEqual([
      "s.yaml:4:43: layer 'top' is not defined in layers (at images.a1.layers[1])",
      "s.yaml:5:16: image 'a9' is not defined in images (at registry[1])",
      "s.yaml:7:19: image 'a9' is not defined in images (at initial.rows[0].image)",
      "s.yaml:9:74: image 'b2' is not defined in images (at steps[0].apply.apps[0].services[0].image)",
      "s.yaml:10:26: image 'zz' is not defined in images (at steps[1].engine-remove-image)",
      "s.yaml:12:17: image 'nope' is not defined in images (at expect.present[1])",
    ]);
  });

  it('reports structural mistakes the schema cannot see', () => {
    expect(
      problems(`name: x
images:
  a: { repo: reg.local/a }
  "9b": { repo: reg.local/b:v1 }
initial:
  engine:
    images: [{ image: a, id: a }]
  rows: [{ image: "reg.local/a:1", app: 1, service: m, commit: c }]
  containers:
    - { service: m, app: 1, image: a }
    - { image: a, foreign: true, service: m }
steps:
  - { restart: {}, idle: {} }
  - {}
  - container: { stop: m, start: m }
  - power-cut: { at: after-save, match: a, matchText: a }
  - apply: { file: t.json, apps: [] }
`),
    ).toEqual([
      "s.yaml:4:3: image symbol '9b' must start with a letter or '_' and use letters, digits, '_', '.', '-' (at images[\"9b\"])",
      "s.yaml:7:14: use either 'image' (with 'references') or a raw 'id'/'layers'/'repoTags'/'repoDigests', not both (at initial.engine.images[0])",
      "s.yaml:8:10: missing required key 'id' (needed when image is a full reference) (at initial.rows[0])",
      "s.yaml:10:7: missing required key 'commit' (or set foreign: true) (at initial.containers[0])",
      "s.yaml:11:7: missing required key 'id' (a foreign container needs one) (at initial.containers[1])",
      "s.yaml:11:34: a foreign container has no 'service' (at initial.containers[1].service)",
      's.yaml:13:5: a step has exactly one kind, found restart, idle (at steps[0])',
      's.yaml:14:5: empty step (at steps[1])',
      's.yaml:15:16: give exactly one of stop, start, remove, lock, unlock (at steps[2].container)',
      "s.yaml:16:44: use either 'match' or 'matchText' (at steps[3].power-cut.matchText)",
      "s.yaml:17:14: 'file' cannot be combined with 'apps' or 'dependent' (at steps[4].apply.file)",
    ]);
  });

  it('reports images that share an ID but not their layers, and ID cycles', () => {
    expect(
      problems(`name: x
layers: { l: 1 }
images:
  a: { repo: reg.local/a, layers: [l] }
  b: { repo: reg.local/b, id: a }
  c: { repo: reg.local/c, id: d }
  d: { repo: reg.local/d, id: c }
`),
    ).toEqual([
      "s.yaml:5:6: image 'b' has the image ID of 'a' but different layers (at images.b.layers)",
      "s.yaml:7:31: image IDs of 'c' -> 'd' -> 'c' form a cycle (at images.d.id)",
    ]);
  });

  it('reports target files that are missing or invalid at the file key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scenario-'));
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ apps: [{ id: 1, commit: 'c', services: [{ name: 'm', image: 'a2' }] }] }),
    );
    writeFileSync(join(dir, 'broken.json'), '{ "apps": [');
    const lines = (() => {
      try {
        loadScenarioText(
          'name: x\nsteps:\n  - apply: { file: bad.json }\n  - apply: { file: missing.json }\n  - apply: { file: broken.json }\n',
          's.yaml',
          dir,
        );
      } catch (error) {
        return (error as Error).message.split('\n');
      }
      return [];
    })();
    expect(lines[0]).toBe(
      "s.yaml:3:20: invalid target file bad.json: image 'a2' is a bare name; a target file needs a full reference (such as a2:latest) (at apps[0].services[0].image) (at steps[0].apply.file)",
    );
    expect(lines[1]).toMatch(
      /^s\.yaml:4:20: cannot read target file 'missing\.json': ENOENT.* \(at steps\[1\]\.apply\.file\)$/,
    );
    expect(lines[2]).toBe(
      's.yaml:5:20: invalid target file broken.json:1:12: not valid JSON: expected a value, found the end of the file (at steps[2].apply.file)',
    );
  });

  it('reports a target file that is not JSON with its own line and column, in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scenario-'));
    writeFileSync(join(dir, 'bad.json'), '{\n  "apps": [\n    { "id": 1,, }\n  ]\n}\n');
    writeFileSync(join(dir, 'scenario.yaml'), 'name: x\nsteps: [\n');
    const lines = (() => {
      try {
        loadScenarioText(
          'name: x\nsteps:\n  - apply: { file: bad.json }\n  - apply: { file: scenario.yaml }\n',
          's.yaml',
          dir,
        );
      } catch (error) {
        return (error as Error).message.split('\n');
      }
      return [];
    })();
    expect(lines).toEqual([
      's.yaml:3:20: invalid target file bad.json:3:15: not valid JSON: expected a double-quoted key, found "," (at steps[0].apply.file)',
      "s.yaml:4:20: invalid target file scenario.yaml:1:1: not valid JSON: expected a value, found 'name' (at steps[1].apply.file)",
    ]);
  });

  it('reports two apps with one id, or two services of an app with one serviceId, in a target', () => {
    expect(
      problems(`name: x
images: { a: { repo: reg.local/a }, b: { repo: reg.local/b } }
steps:
  - apply:
      apps:
        - { id: 1, commit: c1, services: [{ name: main, image: a }] }
        - { id: 1, commit: c2, services: [{ name: side, image: b }] }
  - apply:
      apps:
        - id: 2
          commit: c1
          services: [{ id: 7, name: main, image: a }, { id: 7, name: side, image: b }]
`),
    ).toEqual([
      's.yaml:7:17: app id 1 appears twice (steps[0].apply.apps[0] and steps[0].apply.apps[1]); each app needs its own id (at steps[0].apply.apps[1].id)',
      "s.yaml:12:61: serviceId 7 appears twice in app 2 (services 'main' and 'side'); each service needs its own id (at steps[1].apply.apps[0].services[1].id)",
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'scenario-'));
    const v3 = (id: number) => ({
      id,
      name: 'a',
      releases: { c1: { id: 1, services: { m: { id: 1, image_id: 1, image: 'reg.local/a:1' } } } },
    });
    writeFileSync(join(dir, 'dup.json'), JSON.stringify({ dev: { apps: { u1: v3(1701), u2: v3(1701) } } }));
    expect(() => loadScenarioText('name: x\nsteps:\n  - apply: { file: dup.json }\n', 's.yaml', dir)).toThrow(
      's.yaml:3:20: invalid target file dup.json: app id 1701 appears twice (dev.apps.u1 and dev.apps.u2); each app needs its own id (at dev.apps.u2.id) (at steps[0].apply.file)',
    );
  });

  it('says an empty commit is empty', () => {
    expect(problems('name: x\nsteps:\n  - apply: { apps: [{ id: 1, commit: "" }] }\n')).toEqual([
      's.yaml:3:38: commit must not be empty (at steps[0].apply.apps[0].commit)',
    ]);
  });

  it('points a second use of a row or container id at its own entry, also after an entry with an error', () => {
    expect(
      problems(`name: x
images: { a: { repo: reg.local/a } }
initial:
  rows:
    - { image: a, app: 1, service: m, commit: c, rowId: 5 }
    - { image: nope, app: 1, service: m, commit: c }
    - { image: a, app: 1, service: n, commit: c, rowId: 5 }
  containers:
    - { id: k, image: nope, foreign: true }
    - { id: k, image: a, foreign: true }
    - { id: k, image: a, foreign: true }
`),
    ).toEqual([
      "s.yaml:6:16: image 'nope' is not defined in images (at initial.rows[1].image)",
      's.yaml:7:7: row id 5 is used twice (at initial.rows[2])',
      "s.yaml:9:23: image 'nope' is not defined in images (at initial.containers[0].image)",
      's.yaml:11:7: container id k is used twice (at initial.containers[2])',
    ]);
  });

  it('reports a YAML alias bomb as one line, not a crash', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      levels.push(
        `l${i}: &l${i} [${Array(9)
          .fill(i === 1 ? '*a' : `*l${i - 1}`)
          .join(', ')}]`,
      );
    expect(problems(`name: bomb\n${levels.join('\n')}\n`)).toEqual([
      's.yaml:3:10: YAML aliases expand to too much data (more than 1000 alias expansions)',
    ]);
  });

  it('reports input nested too deeply as one line, not a crash', () => {
    const [line] = problems(`name: deep\nsteps: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
    expect(line).toMatch(/^s\.yaml:\d+:\d+: nested too deeply to read$/);
  });

  it('reports an alias to an anchor that does not exist as what it is', () => {
    expect(problems('name: x\n<<: *nope\n')).toEqual([
      's.yaml:2:5: Unresolved alias (the anchor must be set before the alias): nope',
    ]);
  });

  it('says when a target file is given where a scenario is expected', () => {
    const hint =
      "s.json:1:1: this looks like a target file, not a scenario; use image-keeper apply, or reference it from a scenario's apply: {file: ...}";
    expect(problems('{ "apps": [{ "id": 1, "commit": "c" }] }', 's.json')).toEqual([hint]);
    expect(problems('{ "local": { "apps": {} } }', 's.json')).toEqual([hint]);
    expect(problems('{ "dev1": { "apps": {} } }', 's.json')).toEqual([hint]);
  });

  it('compiles cutAtCalls (positive whole numbers: power cuts before those steps of the run)', () => {
    expect(load('name: x\ncutAtCalls: [46, 3]\n').cutAtCalls).toEqual([46, 3]);
    expect(load('name: x\ncutAtCalls: []\n').cutAtCalls).toBeUndefined();
    expect(problems('name: x\ncutAtCalls: [0, 1.5, -2, a]\n')).toEqual([
      's.yaml:2:14: too small: expected number to be >0 (at cutAtCalls[0])',
      's.yaml:2:17: invalid input: expected int, received number (at cutAtCalls[1])',
      's.yaml:2:22: too small: expected number to be >0 (at cutAtCalls[2])',
      's.yaml:2:26: invalid input: expected number, received string (at cutAtCalls[3])',
    ]);
  });

  it('reports errors in JSON scenarios with line and column', () => {
    expect(
      problems(
        '{\n  "name": "j",\n  "images": { "a": { "repo": "reg.local/a", "layerz": [] } }\n}\n',
        's.json',
      ),
    ).toEqual(["s.json:3:45: unknown key 'layerz' (at images.a.layerz)"]);
  });

  it('reports two service names deriving one serviceId', () => {
    // Find a real collision rather than hard-coding one.
    const collision = (): [string, string] => {
      const seen = new Map<number, string>();
      for (let i = 0; ; i++) {
        const n = `s${i}`;
        const other = seen.get(deriveServiceId(n));
        if (other !== undefined) return [other, n];
        seen.set(deriveServiceId(n), n);
      }
    };
    const pair = collision();
    const [a, b] = pair;
    expect(
      problems(`name: x
images: { i: { repo: reg.local/i } }
initial:
  rows: [{ image: i, app: 1, service: ${a}, commit: c }, { image: i, app: 1, service: ${b}, commit: c }]
`),
    ).toEqual([
      `s.yaml:4:86: services '${a}' and '${b}' derive the same serviceId ${deriveServiceId(a)}; give one an explicit serviceId (at initial.rows[1].service)`,
    ]);
  });
});

describe('loadScenario and loadScenarios', () => {
  it('loads files and folders (recursively, sorted, skipping targets/)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scenarios-'));
    mkdirSync(join(dir, 'b'));
    mkdirSync(join(dir, 'targets'));
    writeFileSync(join(dir, 'b', 'two.yml'), 'name: two\n');
    writeFileSync(join(dir, 'one.yaml'), 'name: one\nsteps:\n  - apply: { file: targets/t.json }\n');
    writeFileSync(join(dir, 'three.json'), '{ "name": "three" }');
    writeFileSync(join(dir, 'notes.md'), '# not a scenario');
    writeFileSync(join(dir, 'targets', 't.json'), '{ "apps": [] }');

    expect((await loadScenarios(dir)).map((s) => [s.name, s.file])).toEqual([
      ['two', join(dir, 'b', 'two.yml')],
      ['one', join(dir, 'one.yaml')],
      ['three', join(dir, 'three.json')],
    ]);
    expect((await loadScenario(join(dir, 'one.yaml'))).steps).toEqual([
      { kind: 'apply', target: { services: [], dependent: [] }, intermediate: false, line: 3 },
    ]);
    expect((await loadScenarios(join(dir, 'three.json'))).map((s) => s.name)).toEqual(['three']);
  });

  it('reports every invalid file of a folder together', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scenarios-'));
    writeFileSync(join(dir, 'a.yaml'), 'name: a\nbogus: 1\n');
    writeFileSync(join(dir, 'b.yaml'), 'nme: b\n');
    await expect(loadScenarios(dir)).rejects.toThrow(
      [
        `${join(dir, 'a.yaml')}:2:1: unknown key 'bogus' (at bogus)`,
        `${join(dir, 'b.yaml')}:1:1: missing required key 'name' (at name)`,
        `${join(dir, 'b.yaml')}:1:1: unknown key 'nme' (at nme)`,
      ].join('\n'),
    );
    await expect(loadScenario(join(dir, 'missing.yaml'))).rejects.toThrow(
      /missing\.yaml:1:1: cannot read scenario/,
    );
  });

  it('says what is wrong with a path that cannot be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scenarios-'));
    symlinkSync(join(dir, 'loop-b.yaml'), join(dir, 'loop-a.yaml'));
    symlinkSync(join(dir, 'loop-a.yaml'), join(dir, 'loop-b.yaml'));
    await expect(loadScenarios(join(dir, 'loop-a.yaml'))).rejects.toThrow(
      `${join(dir, 'loop-a.yaml')}: too many levels of symbolic links (a symlink loop?) (ELOOP)`,
    );
    await expect(loadScenarios(join(dir, 'missing.yaml'))).rejects.toThrow(
      `${join(dir, 'missing.yaml')}: no such scenario file or folder (ENOENT)`,
    );
  });
});

describe('docs/scenario-format.md', () => {
  it('has an example that loads', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile('docs/scenario-format.md', 'utf8');
    const example = /## Example\n\n```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const s = load(example ?? '', 'docs/scenario-format.md');
    expect(s.name).toBe('update-sharing-layers');
    expect(s.steps.map((step) => step.kind)).toEqual(['power-cut', 'apply', 'idle']);
  });
});
