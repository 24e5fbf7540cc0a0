import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import { bufferIo } from '../../cli/cli-io.js';
import { main } from '../../cli/main.js';
import type { History } from '../../sim/explore/history.js';
import { randomSim } from '../../sim/explore/random-sim.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { loadScenario } from '../../sim/scenario/load-scenario.js';
import { FC_NUM_RUNS, FC_PATH, FC_SEED } from './fc-settings.js';

describe('random device histories under power cuts', () => {
  it('S1-S5, K1, U1, DT1 hold at every port call and every history converges (L1, B1, D1), with every crash point reached', async () => {
    const report = await randomSim({ seed: FC_SEED, runs: FC_NUM_RUNS, path: FC_PATH });
    const replay = `replay: FC_SEED=${report.seed} FC_PATH=${report.path ?? ''} npx vitest run test/sim/random-histories.test.ts  or  ./bin/image-keeper sim --seed ${report.seed} --runs ${FC_NUM_RUNS} --path ${report.path ?? ''}`;
    expect(
      report.failures ?? [],
      `${replay}\nminimal history: ${JSON.stringify(report.counterexample)}\n${(report.trace ?? []).join('\n')}`,
    ).toEqual([]);
    expect(report.failed).toBe(false);
    expect(report.runs).toBe(FC_NUM_RUNS);
    const unreached = CRASH_POINTS.filter((p) => (report.hits.get(p) ?? 0) === 0);
    expect(unreached, 'crash points never reached by the random histories').toEqual([]);
    expect(report.cuts).toBeGreaterThan(FC_NUM_RUNS / 4);
  });

  it('a run is deterministic: the same seed explores the same histories with the same results', async () => {
    const a = await randomSim({ seed: 77, runs: 60 });
    const b = await randomSim({ seed: 77, runs: 60 });
    expect({ calls: a.portCalls, cuts: a.cuts, checks: a.checks }).toEqual({
      calls: b.portCalls,
      cuts: b.cuts,
      checks: b.checks,
    });
    expect([...a.hits]).toEqual([...b.hits]);
  });

  // Failures whose minimal history keeps a cut before the k-th port call (cutAtCalls), and one without.
  const SAVED = [
    { seed: 3, mutant: 'delta-from-other-app' },
    { seed: 4, mutant: 'pull-before-row' },
    { seed: 4, mutant: 'skip-startup-cleanup' },
    { seed: 5, mutant: 'ignore-dependent' },
  ] as const;

  it('a failure saved by sim --save-failures replays with run, cuts included, and its printed sim replay finds it again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-failures-'));
    let withCuts = 0;
    for (const { seed, mutant } of SAVED) {
      const sim = bufferIo();
      const args = [
        'sim',
        '--runs',
        '250',
        '--seed',
        String(seed),
        '--workers',
        '1',
        '--mutant',
        mutant,
        '--save-failures',
        dir,
        '--json',
      ];
      expect(await main(args, sim), `${mutant}: ${sim.errors.join('\n')}`).toBe(1);
      const totals = JSON.parse(sim.lines.at(-1) ?? '{}') as { violations: string[]; replay: string[] };
      const invariant = /: ([A-Z0-9]+|assertion): /.exec(totals.violations[0] ?? '')?.[1] ?? '<none>';
      const file = join(dir, `seed-${seed}-${mutant}.yaml`);
      expect(totals.replay).toEqual([
        `./bin/image-keeper run ${file} --mutant ${mutant}`,
        expect.stringMatching(
          new RegExp(
            `^\\./bin/image-keeper sim --seed ${seed} --runs 250 --path [0-9:]+ --mutant ${mutant}$`,
          ),
        ),
      ]);
      const saved = await loadScenario(file);
      const history = JSON.parse(
        /^# history: (.*)$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? '{}',
      ) as History;
      expect(saved.cutAtCalls ?? []).toEqual(history.cutAtCalls);
      if (history.cutAtCalls.length > 0) withCuts++;

      // `run <file> --mutant M` fails the same way, without fast-check.
      const run = bufferIo();
      expect(
        await main(['run', file, '--mutant', mutant, '-q'], run),
        `${mutant}: ${run.lines.join('\n')}`,
      ).toBe(1);
      expect(run.lines.filter((l) => l.startsWith('  - ')).join('\n')).toContain(`${invariant}`);
      // Without the mutant the same history passes: the failure is the mutant's.
      const fixed = await runScenario(saved);
      expect(fixed.failures).toEqual([]);

      // The printed `sim --seed S --runs N --path P` replays that one counterexample.
      const replay = (totals.replay[1] ?? '').split(' ').slice(1);
      const again = bufferIo();
      expect(await main([...replay, '--save-failures', dir, '--json'], again)).toBe(1);
      expect((JSON.parse(again.lines.at(-1) ?? '{}') as { violations: string[] }).violations).toEqual(
        totals.violations,
      );
    }
    // The point of cutAtCalls: some of these failures need a cut by step number to happen at all.
    expect(withCuts).toBeGreaterThan(0);
  });
});
