import type { Mutant } from '../../core/mutants.js';
import type { Persistence } from '../device/fake-device.js';
import type { RunResult } from '../runner/run-scenario.js';
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
}

export interface SweepFailure {
  readonly cutAtCalls: readonly number[];
  readonly result: RunResult;
}

export interface SweepReport {
  readonly scenario: string;
  /** Port calls of the run without a cut: the single-cut positions. */
  readonly baselineCalls: number;
  readonly crashStates: number;
  readonly failures: readonly SweepFailure[];
  readonly checks: number;
  readonly hits: ReadonlyMap<string, number>;
}

/**
 * Exhaustive crash exploration of one scenario (ALICE/ACE style, bounded): a cut before every port call
 * of the run, then, for pairs, a second cut before every port call of the recovery from each first cut.
 * Each crash state is a full run with all invariants and expectations checked.
 */
export async function sweep(scenario: CompiledScenario, options: SweepOptions): Promise<SweepReport> {
  const baseline = await runScenario(scenario, { mutant: options.mutant, persistence: options.persistence ?? 'memory' });
  const failures: SweepFailure[] = [];
  let crashStates = 0;
  let checks = 0;
  const hits = new Map<string, number>();
  let ordinal = 0;
  const mine = (): boolean => {
    const take = !options.shard || ordinal % options.shard.count === options.shard.index;
    ordinal++;
    return take;
  };
  const visit = async (cuts: number[]): Promise<RunResult> => {
    const result = await runScenario(scenario, { mutant: options.mutant, persistence: options.persistence ?? 'memory', cutAtCalls: cuts, trace: false, checkBudgets: false });
    crashStates++;
    checks += result.checks;
    for (const [point, n] of result.hits) hits.set(point, (hits.get(point) ?? 0) + n);
    if (!result.ok) failures.push({ cutAtCalls: cuts, result: await runScenario(scenario, { mutant: options.mutant, persistence: options.persistence ?? 'memory', cutAtCalls: cuts, checkBudgets: false }) });
    return result;
  };
  if (!baseline.ok) failures.push({ cutAtCalls: [], result: baseline });
  for (const [point, n] of baseline.hits) hits.set(point, (hits.get(point) ?? 0) + n);
  checks += baseline.checks;
  for (let k = 1; k <= (options.onlyBaseline ? 0 : baseline.portCalls); k++) {
    if (options.stopOnFailure && failures.length > 0) break;
    let single: RunResult | undefined;
    if (mine()) single = await visit([k]);
    if (!options.pairs) continue;
    // The recovery after a cut at k runs from call k to the end of that run.
    const total = single?.portCalls ?? (await runScenario(scenario, { mutant: options.mutant, persistence: options.persistence ?? 'memory', cutAtCalls: [k], trace: false })).portCalls;
    for (let j = 1; j < total - k + 1; j++) {
      if (options.stopOnFailure && failures.length > 0) break;
      if (mine()) await visit([k, k + j]);
    }
  }
  return { scenario: scenario.name, baselineCalls: baseline.portCalls, crashStates, failures, checks, hits };
}
