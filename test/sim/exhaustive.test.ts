import { describe, expect, it } from 'vitest';
import { MUTANTS } from '../../core/mutants.js';
import type { Mutant } from '../../core/mutants.js';
import { sweep } from '../../sim/explore/exhaustive.js';
import { loadScenario, loadScenarios } from '../../sim/scenario/load-scenario.js';

const regressions = await loadScenarios('scenarios/regressions');

describe('exhaustive crash sweeps', () => {
  it('every single and every pair of cuts in a 10-image update converges without deleting a needed image', async () => {
    const scenario = await loadScenario('scenarios/sweeps/ten-image-update.yaml');
    const report = await sweep(scenario, { pairs: true });
    const first = report.failures[0];
    expect(
      first?.result.failures ?? [],
      first ? `cuts [${first.cutAtCalls.join(', ')}]\n${first.result.trace.join('\n')}` : '',
    ).toEqual([]);
    // Every single cut fires; a second cut is tried at every distinct step of the recovery, so it fires too.
    expect(report.crashStates).toBe(report.positions);
    expect(report.crashStates).toBeGreaterThan(report.baselineCalls ** 2 / 2);
    expect(report.baselineCalls).toBeLessThan(report.baselineSteps);
    // Power goes out between two layers of every pull, not only between port calls.
    expect(report.cutsAt.get('mid-pull') ?? 0).toBeGreaterThan(0);
    console.log(
      `ten-image update: ${report.baselineSteps} steps, ${report.baselineCalls} distinct single-cut states, ${report.crashStates} crash states (singles and pairs), ${report.checks} invariant checks`,
    );
  });

  it('shards split the crash states exactly: together they are the whole, and no state is in two shards', async () => {
    const scenario = await loadScenario('scenarios/basics/02-update-sharing-layers.yaml');
    const whole = await sweep(scenario, { pairs: true });
    const parts = await Promise.all(
      [0, 1, 2].map((index) => sweep(scenario, { pairs: true, shard: { index, count: 3 } })),
    );
    expect(parts.reduce((n, p) => n + p.crashStates, 0)).toBe(whole.crashStates);
    expect(parts.reduce((n, p) => n + p.checks, 0)).toBe(whole.checks);
    expect(parts.map((p) => p.crashStates).every((n) => n > 0)).toBe(true);
  });

  it('skipping a cut that only reads lie between it and the cut before changes no verdict (every mutant, a few scenarios)', async () => {
    const scenarios = [
      await loadScenario('scenarios/basics/02-update-sharing-layers.yaml'),
      await loadScenario('scenarios/basics/05-service-dropped.yaml'),
      await loadScenario('scenarios/basics/15-delete-then-download.yaml'),
      ...regressions.slice(0, 2),
    ];
    const verdicts = (report: Awaited<ReturnType<typeof sweep>>): string[] =>
      [
        ...new Set(
          report.failures.flatMap((f) =>
            f.result.failures.map((m) => m.replace(/#\d+/g, '#').replace(/\d+ bytes/g, 'N bytes')),
          ),
        ),
      ].sort();
    let every = 0;
    let distinct = 0;
    for (const mutant of [undefined, ...(Object.keys(MUTANTS) as Mutant[])]) {
      for (const scenario of scenarios) {
        const full = await sweep(scenario, { pairs: false, mutant, everyStep: true });
        const deduped = await sweep(scenario, { pairs: false, mutant });
        expect(verdicts(deduped), `${scenario.name} under ${mutant ?? 'no mutant'}`).toEqual(verdicts(full));
        every += full.crashStates;
        distinct += deduped.crashStates;
      }
    }
    expect(distinct).toBeLessThan(every);
  });

  for (const scenario of regressions) {
    it(`every single cut of regression ${scenario.name} ends ok (its own named cuts may then not be reached)`, async () => {
      const report = await sweep(scenario, { pairs: false });
      const first = report.failures[0];
      expect(
        first?.result.failures ?? [],
        first ? `cuts [${first.cutAtCalls.join(', ')}]\n${first.result.trace.join('\n')}` : '',
      ).toEqual([]);
      expect(report.crashStates).toBe(report.baselineCalls);
    });
  }
});
