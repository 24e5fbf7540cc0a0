import { describe, expect, it } from 'vitest';
import { sweep } from '../../sim/explore/exhaustive.js';
import { randomSim } from '../../sim/explore/random-sim.js';
import { p1DbOpensToBeforeOrAfter } from '../../sim/invariants/invariants.js';
import { loadScenario } from '../../sim/scenario/load-scenario.js';
import { FC_SEED } from './fc-settings.js';

/**
 * The same simulation with the real sql.js adapter over the crash-model file system: power also goes out
 * between the file-system calls of a commit (temp write, fsync, rename, directory fsync), and after each
 * cut the DB must open to the state before or after the interrupted commit (P1).
 */
describe('power cuts inside DB persistence (sql.js over the crash-model file system)', () => {
  it('P1 and every other invariant hold over random histories whose cuts land inside persistence too', async () => {
    const runs = Number(process.env['FC_NUM_RUNS_SQLJS'] ?? 80);
    const report = await randomSim({ seed: FC_SEED, runs, persistence: 'sqljs' });
    expect(
      report.failures ?? [],
      `replay: ./bin/image-keeper sim --db sqljs --seed ${report.seed} --runs ${runs} --path ${report.path ?? ''}\n${(report.trace ?? []).join('\n')}`,
    ).toEqual([]);
    expect(report.cuts).toBeGreaterThan(runs / 4);
  });

  it('every single cut of an update, file-system calls included, converges', async () => {
    const scenario = await loadScenario('scenarios/basics/08-cut-after-step-1.yaml');
    const memory = await sweep(scenario, { pairs: false });
    const report = await sweep(scenario, { pairs: false, persistence: 'sqljs' });
    expect(report.failures.map((f) => `${f.cutAtCalls.join(',')}: ${f.result.failures.join('; ')}`)).toEqual(
      [],
    );
    // Each commit adds its four file-system calls (temp write, fsync, rename, directory fsync) as places
    // where power can go out; this update makes at least five commits.
    expect(report.baselineCalls).toBeGreaterThanOrEqual(memory.baselineCalls + 20);
  });

  it('P1 tells a torn state from the states before and after a commit', () => {
    const before = { rows: [], target: null };
    const row = {
      id: 1,
      name: 'r/a@sha256:' + 'a'.repeat(64),
      appId: 1,
      serviceId: 1,
      serviceName: 'main',
      imageId: 1,
      releaseId: 1,
      commit: 'c1',
      dockerImageId: null,
    };
    const after = { rows: [row], target: null };
    expect(p1DbOpensToBeforeOrAfter(before, after, before)).toBeUndefined();
    expect(p1DbOpensToBeforeOrAfter(before, after, after)).toBeUndefined();
    expect(
      p1DbOpensToBeforeOrAfter(before, after, { rows: [{ ...row, commit: 'torn' }], target: null }),
    ).toMatch(/^P1/);
  });
});
