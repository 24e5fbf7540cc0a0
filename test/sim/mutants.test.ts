import { afterAll, describe, expect, it } from 'vitest';
import { MUTANTS } from '../../core/mutants.js';
import type { Mutant } from '../../core/mutants.js';
import { randomSim } from '../../sim/explore/random-sim.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { loadScenarios } from '../../sim/scenario/load-scenario.js';

const scenarios = [
  ...(await loadScenarios('scenarios/basics')),
  ...(await loadScenarios('scenarios/regressions')),
];
const rows: string[] = [];

/**
 * Harness power: every deliberately broken behaviour must be caught, by a bundled scenario or by the
 * random histories. Prints how long and how many runs each took.
 */
describe('the simulator catches every mutant', () => {
  afterAll(() => {
    console.log(['mutant                       caught by            runs   ms', ...rows].join('\n'));
  });

  for (const mutant of Object.keys(MUTANTS) as Mutant[]) {
    it(`catches ${mutant}: ${MUTANTS[mutant]}`, async () => {
      const started = performance.now();
      let runs = 0;
      for (const scenario of scenarios) {
        runs++;
        const result = await runScenario(scenario, { mutant, trace: false });
        if (!result.ok) {
          rows.push(
            `${mutant.padEnd(28)} ${('scenario ' + scenario.name).slice(0, 20).padEnd(20)} ${String(runs).padStart(5)} ${(performance.now() - started).toFixed(0).padStart(5)}`,
          );
          return;
        }
      }
      const report = await randomSim({ seed: 20261203, runs: 5000, mutant });
      rows.push(
        `${mutant.padEnd(28)} ${'random histories'.padEnd(20)} ${String(runs + report.runs).padStart(5)} ${(performance.now() - started).toFixed(0).padStart(5)}`,
      );
      expect(
        report.failed,
        `${mutant} was not caught by ${scenarios.length} scenarios and ${report.runs} random histories`,
      ).toBe(true);
    });
  }
});
