import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { runCommand } from '../../cli/run-command.js';
import { bufferIo } from '../../cli/cli-io.js';
import { EXIT } from '../../cli/exit-codes.js';
import { isKeeperError } from '../../core/errors.js';
import { MUTANTS } from '../../core/mutants.js';
import type { Mutant } from '../../core/mutants.js';
import { sweep } from '../../sim/explore/exhaustive.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import type { CompiledScenario } from '../../sim/scenario/compiled-scenario.js';
import { loadScenarios, loadScenarioText } from '../../sim/scenario/load-scenario.js';
import { writeScenario } from '../../sim/scenario/write-scenario.js';

/**
 * The field-failure library (scenarios/field, issue 6): one file per entry of ../shared/field-failures.md,
 * named by its id. Each passes on the fakes, fails under every mutant it lists (it would have caught the
 * original bug), and survives a power cut before every single port call of its run.
 */

const FIELD = 'scenarios/field';
const library = await loadScenarios(FIELD);

/** The 18 entries; FB-02 has two scenarios (a: partial drop, b: both services move). */
const IDS = [
  'FB-01',
  'FB-02a',
  'FB-02b',
  'FB-04',
  'FB-05',
  'FB-06',
  'FB-07',
  'FB-09',
  'FB-10',
  'FB-12',
  'FB-13',
  'FB-14',
  'FB-16',
  'FB-17',
  'FB-20',
  'FB-21',
  'FB-23',
  'FB-24',
  'FB-25',
];

/** Entries whose expected outcome conflicts with our design: the file states the decision and why. */
const DECISIONS = ['FB-01', 'FB-02a', 'FB-02b', 'FB-09', 'FB-13', 'FB-16', 'FB-21'];

/**
 * Mutants no field scenario lists, and why. Each is caught elsewhere (bundled scenarios, regressions or
 * random histories: test/sim/mutants.test.ts).
 */
const NOT_IN_LIBRARY: Readonly<Partial<Record<Mutant, string>>> = {
  'untag-last-reference':
    'FB-10 is its field story, but the fix (system-app rows dropped at startup, config.systemApps) removes the row before any removal could untag the supervisor image',
  'skip-repair':
    'identity by digest makes "delete the row, save it again" as good as a repair in every field story (FB-20, FB-24): no download, nothing removed; it only bites when the pulled image belongs to an intermediate target, which no entry has',
  'kill-before-ready': 'its incident (balena #1812) is not among the 18 entries',
  'duplicate-rows':
    "its incident (balena #2538) is not among the entries; FB-13's \"rows do not multiply\" is also enforced by the image table's unique key, which a run that cannot converge does not tell apart from the engine's error",
  'ignore-dependent': 'no entry involves dependent apps',
  'untag-others-reference':
    'no entry has two rows of one image with the same name, where removing one could untag the name the other still needs (scenarios/regressions/shared-digest-other-row-reference.yaml has)',
  'delta-from-other-app':
    'no entry has two apps with a service of the same name; FB-06 covers the same-app variant (delta-from-other-service)',
};

const byId = new Map(library.map((s) => [s.id ?? s.name, s]));
const scenario = (id: string): CompiledScenario => {
  const s = byId.get(id);
  if (!s) throw new Error(`no field scenario ${id}`);
  return s;
};

describe('the field-failure library', () => {
  it('has one file per entry, named by its id, with its source and fault class', () => {
    expect(library.map((s) => s.id).sort()).toEqual([...IDS].sort());
    for (const s of library) {
      expect(basename(s.file), s.file).toBe(`${s.id}.yaml`);
      expect(s.source, s.file).toBeTruthy();
      expect(s.faultClass, s.file).toBeTruthy();
      const text = readFileSync(s.file, 'utf8');
      const header = text
        .split('\n')
        .filter((l) => l.startsWith('#'))
        .join('\n');
      expect(header, s.file).toMatch(new RegExp(`^# ${s.id?.replace(/[ab]$/, '')}`));
      expect(header, s.file).toContain('# Source:');
      expect(header, s.file).toContain('# Fault class:');
      expect(header, s.file).toContain('# Reproduces');
    }
  });

  it('states the decision, and why, where the expected outcome conflicts with our design', () => {
    for (const id of DECISIONS) {
      const text = readFileSync(scenario(id).file, 'utf8');
      const decision = /^# Decision:[^\n]*(\n# {2}[^\n]*)*/m.exec(text)?.[0] ?? '';
      expect(decision, id).toContain('because');
    }
  });

  for (const id of IDS) {
    it(`${id} passes on the fakes`, async () => {
      const result = await runScenario(scenario(id));
      expect(result.failures, result.trace.join('\n')).toEqual([]);
    });
  }

  describe('every listed mutant makes its scenario fail', () => {
    for (const id of IDS) {
      const s = scenario(id);
      for (const mutant of (s.catches ?? []) as Mutant[]) {
        it(`${id} catches ${mutant}`, async () => {
          const result = await runScenario(s, { mutant, trace: false });
          expect(result.ok, `${id} passes under ${mutant}`).toBe(false);
        });
      }
    }
  });

  it('lists every mutant that models a field failure, and says why the others are not listed', () => {
    const listed = new Set(library.flatMap((s) => s.catches ?? []));
    const unlisted = Object.keys(MUTANTS).filter((m) => !listed.has(m));
    expect(unlisted.sort()).toEqual(Object.keys(NOT_IN_LIBRARY).sort());
    console.log(
      [
        `field library: ${library.length} scenarios; mutants listed: ${[...listed].sort().join(', ')}`,
        'not listed by any field scenario:',
        ...Object.entries(NOT_IN_LIBRARY).map(([m, why]) => `  ${m}: ${why}`),
      ].join('\n'),
    );
  });

  // Every crash state of the scenario: a cut before each port call of its run, then recovery, with all
  // invariants and expectations checked (about 1,340 crash states, 2-3 s in all).
  describe('every single crash point of every field scenario ends ok', () => {
    for (const id of IDS) {
      it(id, async () => {
        const report = await sweep(scenario(id), { pairs: false });
        const first = report.failures[0];
        expect(report.crashStates).toBe(report.baselineCalls);
        expect(
          first?.result.failures ?? [],
          first ? `cuts [${first.cutAtCalls.join(', ')}]\n${first.result.trace.join('\n')}` : '',
        ).toEqual([]);
      });
    }
  });

  it('round-trips through writeScenario with its metadata', () => {
    for (const s of library) {
      const back = loadScenarioText(writeScenario(s), '<written>', resolve(FIELD));
      const comparable = (c: CompiledScenario): unknown => ({
        ...c,
        file: '',
        steps: c.steps.map(({ line: _line, ...step }) => step),
      });
      expect(comparable(back), s.file).toEqual(comparable(s));
      expect([back.id, back.faultClass, back.catches]).toEqual([s.id, s.faultClass, s.catches]);
    }
  });

  it('rejects an unknown mutant in catches with file:line:col', () => {
    const text = readFileSync(scenario('FB-10').file, 'utf8').replace(
      'catches: [skip-startup-cleanup]',
      'catches: [skip-startup-cleanup, skip-everything]',
    );
    let message = '';
    try {
      loadScenarioText(text, 'FB-10.yaml', resolve(FIELD));
    } catch (error) {
      expect(isKeeperError(error, 'INVALID_SCENARIO')).toBe(true);
      message = (error as Error).message;
    }
    expect(message).toMatch(
      /^FB-10\.yaml:\d+:\d+: unknown mutant 'skip-everything' \(see core\/mutants\.ts\) \(at catches\[1\]\)$/,
    );
  });

  it('`image-keeper run scenarios/field/ -q` prints the table: id, fault class, result, mutants caught', async () => {
    const io = bufferIo();
    const code = await runCommand([FIELD], { quiet: true }, io);
    expect(code, io.lines.join('\n')).toBe(EXIT.OK);
    const header = io.lines.findIndex((l) => /^id +fault class +result +catches$/.test(l));
    expect(header).toBeGreaterThan(0);
    const rows = io.lines.slice(header + 2, header + 2 + IDS.length);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(IDS);
    for (const row of rows) {
      const s = scenario(row.split(/\s+/)[0] ?? '');
      expect(row).toContain(s.faultClass ?? '');
      expect(row).toMatch(/ PASS /);
      for (const m of s.catches ?? []) expect(row).toContain(`${m} caught`);
      expect(row).not.toContain('MISSED');
    }
    expect(io.lines.at(-1)).toBe(`${IDS.length} passed, 0 failed`);
  });

  it('a listed mutant that is not caught fails the scenario (MISSED in the table)', async () => {
    const s = scenario('FB-02a');
    const file = join(await mkdtemp(join(tmpdir(), 'field-')), 'FB-02a.yaml');
    // delete-by-name cannot bite in FB-02a (app_2's container protects X); listing it must fail the run.
    await writeFile(
      file,
      readFileSync(s.file, 'utf8').replace('\nid: FB-02a\n', '\nid: FB-02a\ncatches: [delete-by-name]\n'),
    );
    const io = bufferIo();
    const code = await runCommand([file], { quiet: true }, io);
    expect(code).toBe(EXIT.FAILED);
    expect(io.lines.join('\n')).toContain('delete-by-name MISSED');
    expect(io.lines.at(-1)).toBe('0 passed, 1 failed');
  });
});
