import type { Mutant } from '../../core/mutants.js';
import type { Persistence } from '../device/fake-device.js';
import type { RunOptions, RunResult } from '../runner/run-scenario.js';
import { runScenario } from '../runner/run-scenario.js';
import type { CompiledScenario } from '../scenario/compiled-scenario.js';

export interface SweepOptions {
  /** Also every second cut during the recovery from each first cut. */
  readonly pairs: boolean;
  readonly mutant?: Mutant | undefined;
  /** Deterministic split of the crash states: this process takes every n-th, starting at i. */
  readonly shard?: { readonly index: number; readonly count: number };
  /** Stop at the first failing crash state. */
  readonly stopOnFailure?: boolean;
  /** Only the run without cuts (the scenario as written). */
  readonly onlyBaseline?: boolean;
  readonly persistence?: Persistence;
  /**
   * Cut at every step, also where only reads separate it from the step before (the same crash state
   * again). Off by default; the equivalence is checked by a test that runs both.
   */
  readonly everyStep?: boolean;
}

export interface SweepFailure {
  readonly cutAtCalls: readonly number[];
  readonly result: RunResult;
}

export interface SweepReport {
  readonly scenario: string;
  /** Distinct single-cut positions of the run without a cut (every step with `everyStep`). */
  readonly baselineCalls: number;
  /** Steps of the run without a cut where power can go out. */
  readonly baselineSteps: number;
  /** Runs in which every cut asked for really fired: distinct crash states explored. */
  readonly crashStates: number;
  /** Cut positions tried (a second cut can fall after the end of a short recovery: not a crash state). */
  readonly positions: number;
  readonly failures: readonly SweepFailure[];
  readonly checks: number;
  readonly hits: ReadonlyMap<string, number>;
  /** Cuts that landed at each named crash point. */
  readonly cutsAt: ReadonlyMap<string, number>;
}

/**
 * Exhaustive crash exploration of one scenario (ALICE/ACE style, bounded): a cut at every step of the
 * run (before each port call, and between two layers of every pull or delta), then, for pairs, a
 * second cut at every step of the recovery from each first cut. Each crash state is a full run with
 * all invariants checked. Steps reached only through reads since the step before give that step's
 * crash state again, so they are skipped unless `everyStep` is set (RunResult.distinctSteps).
 */
export async function sweep(scenario: CompiledScenario, options: SweepOptions): Promise<SweepReport> {
  const base: RunOptions = { mutant: options.mutant, persistence: options.persistence ?? 'memory' };
  const baseline = await runScenario(scenario, base);
  const failures: SweepFailure[] = [];
  let crashStates = 0;
  let positions = 0;
  let checks = 0;
  const hits = new Map<string, number>();
  const cutsAt = new Map<string, number>();
  const add = (into: Map<string, number>, from: ReadonlyMap<string, number>): void => {
    for (const [point, n] of from) into.set(point, (into.get(point) ?? 0) + n);
  };
  let ordinal = 0;
  const mine = (): boolean => {
    const take = !options.shard || ordinal % options.shard.count === options.shard.index;
    ordinal++;
    return take;
  };
  // A cut changes the path, so a named cut of the scenario may no longer be reached: the baseline
  // checks those; budgets are bounded by the B1/D1 invariants in every crash state instead.
  const cut: RunOptions = { ...base, trace: false, checkBudgets: false, allowUnreachedCuts: true };
  const visit = async (cuts: number[]): Promise<RunResult> => {
    const result = await runScenario(scenario, { ...cut, cutAtCalls: cuts });
    positions++;
    // (A scenario may carry cuts by number of its own: those fire, or not, on top.)
    if (result.numberedCuts >= cuts.length) crashStates++;
    checks += result.checks;
    add(hits, result.hits);
    add(cutsAt, result.cutsAt);
    if (!result.ok)
      failures.push({
        cutAtCalls: cuts,
        result: await runScenario(scenario, { ...cut, cutAtCalls: cuts, trace: true }),
      });
    return result;
  };
  // The baseline belongs to the first shard only, so shards add up to the whole.
  if (!options.shard || options.shard.index === 0) {
    if (!baseline.ok) failures.push({ cutAtCalls: [], result: baseline });
    add(hits, baseline.hits);
    checks += baseline.checks;
  }
  const positionsOf = (run: RunResult): readonly number[] =>
    options.everyStep ? Array.from({ length: run.cuttableSteps }, (_, i) => i + 1) : run.distinctSteps;
  const singles = options.onlyBaseline ? [] : positionsOf(baseline);
  for (const k of singles) {
    if (options.stopOnFailure && failures.length > 0) break;
    let single: RunResult | undefined;
    if (mine()) single = await visit([k]);
    if (!options.pairs) continue;
    // The recovery after a cut at k runs from step k to the end of that run.
    const run = single ?? (await runScenario(scenario, { ...cut, cutAtCalls: [k] }));
    for (const second of positionsOf(run)) {
      if (second <= k) continue;
      if (options.stopOnFailure && failures.length > 0) break;
      if (mine()) await visit([k, second]);
    }
  }
  return {
    scenario: scenario.name,
    baselineCalls: singles.length,
    baselineSteps: baseline.cuttableSteps,
    crashStates,
    positions,
    failures,
    checks,
    hits,
    cutsAt,
  };
}
