import { describe, expect, it } from 'vitest';
import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import { compileHistory } from '../../sim/explore/history.js';
import { randomSim } from '../../sim/explore/random-sim.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { loadScenarioText } from '../../sim/scenario/load-scenario.js';
import { writeScenario } from '../../sim/scenario/write-scenario.js';
import { FC_NUM_RUNS, FC_PATH, FC_SEED } from './fc-settings.js';

describe('random device histories under power cuts', () => {
  it('S1-S5, K1, U1, DT1 hold at every port call and every history converges (L1, B1, D1), with every crash point reached', async () => {
    const report = await randomSim({ seed: FC_SEED, runs: FC_NUM_RUNS, path: FC_PATH });
    const replay = `replay: FC_SEED=${report.seed} FC_PATH=${report.path ?? ''} npx vitest run test/sim/random-histories.test.ts  or  ./bin/image-keeper sim --seed ${report.seed} --runs ${FC_NUM_RUNS} --path ${report.path ?? ''}`;
    expect(report.failures ?? [], `${replay}\nminimal history: ${JSON.stringify(report.counterexample)}\n${(report.trace ?? []).join('\n')}`).toEqual([]);
    expect(report.failed).toBe(false);
    expect(report.runs).toBe(FC_NUM_RUNS);
    const unreached = CRASH_POINTS.filter((p) => (report.hits.get(p) ?? 0) === 0);
    expect(unreached, 'crash points never reached by the random histories').toEqual([]);
    expect(report.cuts).toBeGreaterThan(FC_NUM_RUNS / 4);
  });

  it('a run is deterministic: the same seed explores the same histories with the same results', async () => {
    const a = await randomSim({ seed: 77, runs: 60 });
    const b = await randomSim({ seed: 77, runs: 60 });
    expect({ calls: a.portCalls, cuts: a.cuts, checks: a.checks }).toEqual({ calls: b.portCalls, cuts: b.cuts, checks: b.checks });
    expect([...a.hits]).toEqual([...b.hits]);
  });

  it('a failure is saved as a scenario file that replays the same failure without fast-check', async () => {
    const report = await randomSim({ seed: 5, runs: 500, mutant: 'ignore-dependent' });
    expect(report.failed).toBe(true);
    const history = report.counterexample;
    if (!history) throw new Error('no counterexample');
    const text = writeScenario(compileHistory(history, 'saved failure'));
    const reloaded = loadScenarioText(text, '<saved>', '.');
    const again = await runScenario(reloaded, { mutant: 'ignore-dependent', cutAtCalls: history.cutAtCalls, allowUnreachedCuts: true });
    expect(again.ok).toBe(false);
    expect(again.failures.join('\n')).toContain(report.failures?.[0]?.split(':')[0] ?? '<none>');
    const fixed = await runScenario(reloaded, { cutAtCalls: history.cutAtCalls, allowUnreachedCuts: true });
    expect(fixed.failures).toEqual([]);
  });
});
