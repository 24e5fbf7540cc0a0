import fc from 'fast-check';
import type { Mutant } from '../../core/mutants.js';
import type { Persistence } from '../device/fake-device.js';
import { runScenario } from '../runner/run-scenario.js';
import type { History } from './history.js';
import { compileHistory, historyArb } from './history.js';
import type { CompiledScenario } from '../scenario/compiled-scenario.js';

function withoutSteps(scenario: CompiledScenario, indices: readonly number[]): CompiledScenario {
  return { ...scenario, steps: scenario.steps.filter((_, i) => !indices.includes(i)) };
}

export interface RandomSimOptions {
  readonly seed: number;
  readonly runs: number;
  /** Stop after this long even if runs remain (a soak uses minutes, CI seconds). */
  readonly timeLimitMs?: number;
  readonly mutant?: Mutant | undefined;
  /** Replays one counterexample: the `path` fast-check printed with the seed. */
  readonly path?: string | undefined;
  /** 'sqljs': the device keeps its table in the real sql.js adapter over the crash-model file system. */
  readonly persistence?: Persistence;
}

export interface RandomSimReport {
  readonly seed: number;
  readonly runs: number;
  readonly ms: number;
  readonly failed: boolean;
  readonly path?: string;
  readonly counterexample?: History;
  /** The counterexample as a scenario that replays it without fast-check (unreached cuts left out). */
  readonly scenario?: CompiledScenario;
  readonly failures?: readonly string[];
  readonly trace?: readonly string[];
  readonly portCalls: number;
  readonly cuts: number;
  readonly checks: number;
  readonly hits: ReadonlyMap<string, number>;
  /** Power cuts that landed at each named crash point. */
  readonly cutsAt: ReadonlyMap<string, number>;
  /** B1 over every apply of every history: bytes downloaded, and bytes of target layers missing at the start. */
  readonly bandwidth: { readonly downloaded: number; readonly missing: number };
}

/**
 * Random device histories under power cuts (property: after any history of targets, container moves,
 * idle ticks and power cuts, the safety invariants hold at every port call and the device converges).
 * All randomness flows from `seed`; fast-check shrinks a failure to a minimal history.
 */
export async function randomSim(options: RandomSimOptions): Promise<RandomSimReport> {
  const started = performance.now();
  let portCalls = 0;
  let cuts = 0;
  let checks = 0;
  const hits = new Map<string, number>();
  const cutsAt = new Map<string, number>();
  const bandwidth = { downloaded: 0, missing: 0 };
  const property = fc.asyncProperty(historyArb, async (history) => {
    const result = await runScenario(compileHistory(history), {
      mutant: options.mutant,
      allowUnreachedCuts: true,
      trace: false,
      persistence: options.persistence ?? 'memory',
    });
    portCalls += result.portCalls;
    cuts += result.cuts;
    checks += result.checks;
    for (const [point, n] of result.hits) hits.set(point, (hits.get(point) ?? 0) + n);
    for (const [point, n] of result.cutsAt) cutsAt.set(point, (cutsAt.get(point) ?? 0) + n);
    bandwidth.downloaded += result.bandwidth.downloaded;
    bandwidth.missing += result.bandwidth.missing;
    if (!result.ok) throw new Error(result.failures.join('\n'));
  });
  const details = await fc.check(property, {
    seed: options.seed,
    numRuns: options.runs,
    ...(options.path !== undefined ? { path: options.path, endOnFailure: true } : {}),
    ...(options.timeLimitMs !== undefined
      ? { interruptAfterTimeLimit: options.timeLimitMs, markInterruptAsFailure: false }
      : {}),
  });
  const ms = performance.now() - started;
  const base = {
    seed: options.seed,
    runs: details.numRuns,
    ms,
    portCalls,
    cuts,
    checks,
    hits,
    cutsAt,
    bandwidth,
  };
  if (!details.failed || !details.counterexample) return { ...base, failed: false };
  const [counterexample] = details.counterexample;
  const replay = await runScenario(compileHistory(counterexample), {
    mutant: options.mutant,
    allowUnreachedCuts: true,
    persistence: options.persistence ?? 'memory',
  });
  return {
    ...base,
    failed: true,
    ...(details.counterexamplePath !== null ? { path: details.counterexamplePath } : {}),
    counterexample,
    scenario: withoutSteps(
      compileHistory(
        counterexample,
        `sim failure seed ${options.seed} path ${details.counterexamplePath ?? ''}`,
      ),
      replay.unfiredCutSteps,
    ),
    failures: replay.failures.length > 0 ? replay.failures : [String(details.errorInstance)],
    trace: replay.trace,
  };
}
