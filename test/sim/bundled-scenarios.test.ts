import { describe, expect, it } from 'vitest';
import { sweep } from '../../sim/explore/exhaustive.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { loadScenarios } from '../../sim/scenario/load-scenario.js';

const basics = await loadScenarios('scenarios/basics');
const regressions = await loadScenarios('scenarios/regressions');

describe('bundled scenarios on the fakes', () => {
  it('there are at least 14 of them', () => {
    expect(basics.length).toBeGreaterThanOrEqual(14);
  });

  for (const scenario of [...basics, ...regressions]) {
    it(`${scenario.name}: expectations and invariants hold`, async () => {
      const result = await runScenario(scenario);
      expect(result.failures, result.trace.join('\n')).toEqual([]);
    });
  }
});

describe('every single crash point of every bundled scenario converges without deleting a needed image', () => {
  for (const scenario of basics) {
    it(scenario.name, async () => {
      const report = await sweep(scenario, { pairs: false });
      const first = report.failures[0];
      expect(report.crashStates).toBe(report.baselineCalls);
      expect(
        first?.result.failures ?? [],
        first ? `cuts [${first.cutAtCalls.join(', ')}]\n${first.result.trace.join('\n')}` : '',
      ).toEqual([]);
    });
  }
});
