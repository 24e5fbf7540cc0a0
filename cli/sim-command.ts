import { fork } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { KeeperError } from '../core/errors.js';
import type { Mutant } from '../core/mutants.js';
import { isMutant, MUTANTS } from '../core/mutants.js';
import { CRASH_POINTS } from '../core/ports/crash-points.js';
import { sweep } from '../sim/explore/exhaustive.js';
import { randomSim } from '../sim/explore/random-sim.js';
import { loadScenarios } from '../sim/scenario/load-scenario.js';
import type { CompiledScenario } from '../sim/scenario/compiled-scenario.js';
import { writeScenario } from '../sim/scenario/write-scenario.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';

export interface SimOptions {
  readonly exhaustive?: boolean;
  readonly pairs?: boolean;
  readonly runs?: string;
  readonly seed?: string;
  readonly path?: string;
  readonly minutes?: string;
  readonly shard?: string;
  readonly workers?: string;
  readonly mutant?: string;
  readonly saveFailures?: string;
  readonly json?: boolean;
  readonly db?: string;
}

/** What one process explored; workers send it to the parent as JSON. */
export interface SimTotals {
  scenarios: number;
  crashStates: number;
  histories: number;
  checks: number;
  cuts: number;
  violations: string[];
  replay: string[];
  hits: Record<string, number>;
  ms: number;
}

/** Random histories per batch (one fast-check run with its own seed). */
const BATCH = 250;

/** Random histories below this count do not prove crash-point coverage, so it is not enforced. */
const COVERAGE_MIN_HISTORIES = 100;

/**
 * `image-keeper sim`: exhaustive crash sweeps of scenarios and random fault histories, with a report.
 * Deterministic from --seed; --shard i/n splits the work; --workers n forks one shard per core.
 */
export async function simCommand(paths: readonly string[], options: SimOptions, io: CliIo): Promise<number> {
  const mutant = parseMutant(options.mutant);
  const seed = options.seed !== undefined ? integer(options.seed, '--seed') : Date.now() % 2 ** 31;
  // Every core by default (the simulator is single-threaded JS); a replay of one path is one process.
  const workers =
    options.workers !== undefined ? integer(options.workers, '--workers') : options.path !== undefined ? 1 : availableParallelism();
  const shard = options.shard !== undefined ? parseShard(options.shard) : undefined;
  const persistence = parsePersistence(options.db);
  if (options.minutes !== undefined && !(Number(options.minutes) > 0)) {
    throw new KeeperError('USAGE', `--minutes wants a positive number, got '${options.minutes}'`);
  }
  if (options.path !== undefined && !/^\d+(:\d+)*$/.test(options.path)) {
    throw new KeeperError('USAGE', `--path wants the path fast-check printed (numbers separated by ':'), got '${options.path}'`);
  }
  // Bad scenario files fail here, once, before any worker starts.
  for (const path of paths) await loadScenarios(path);
  if (options.pairs && !options.exhaustive) throw new KeeperError('USAGE', '--pairs goes with --exhaustive');
  if (workers > 1 && shard === undefined) return runWorkers(workers, seed, io, options.json ?? false);

  const started = performance.now();
  const totals: SimTotals = { scenarios: 0, crashStates: 0, histories: 0, checks: 0, cuts: 0, violations: [], replay: [], hits: {}, ms: 0 };
  const addHits = (hits: ReadonlyMap<string, number>): void => {
    for (const [p, n] of hits) totals.hits[p] = (totals.hits[p] ?? 0) + n;
  };
  const saveDir = options.saveFailures ?? 'sim-failures';

  const scenarios: CompiledScenario[] = [];
  for (const path of paths) scenarios.push(...(await loadScenarios(path)));
  for (const scenario of scenarios) {
    totals.scenarios++;
    const report = await sweep(scenario, { pairs: (options.exhaustive ?? false) && (options.pairs ?? false), mutant, persistence, ...(shard ? { shard } : {}), stopOnFailure: true, ...(options.exhaustive ? {} : { onlyBaseline: true }) });
    totals.crashStates += report.crashStates;
    totals.checks += report.checks;
    addHits(report.hits);
    for (const failure of report.failures) {
      totals.violations.push(`${scenario.name} with cuts before port calls [${failure.cutAtCalls.join(', ')}]: ${failure.result.failures.join('; ')}`);
      if (!options.json) for (const line of failure.result.trace) io.out(line);
      const where = failure.cutAtCalls.length === 0 ? 'without any cut' : `with cuts before port calls ${failure.cutAtCalls.join(', ')}`;
      totals.replay.push(`./bin/image-keeper sim ${scenario.file} --exhaustive${options.pairs ? ' --pairs' : ''}${mutant ? ` --mutant ${mutant}` : ''}${persistence === 'sqljs' ? ' --db sqljs' : ''} --workers 1   (fails ${where})`);
    }
  }

  const runs = options.runs !== undefined ? integer(options.runs, '--runs') : scenarios.length > 0 ? 0 : 200;
  const deadline = options.minutes !== undefined ? started + Number(options.minutes) * 60_000 : undefined;
  const shardIndex = shard?.index ?? 0;
  const shardCount = shard?.count ?? 1;
  // Histories come in batches of BATCH runs; batch b has seed seed+b, and shard i takes the batches
  // b = i, i+n, ...: the histories explored depend on the seed and the run count, never on how many
  // workers or machines share them.
  const batches = deadline === undefined ? Math.ceil(runs / BATCH) : Number.POSITIVE_INFINITY;
  for (let batch = shardIndex; batch < batches; batch += shardCount) {
    const batchSeed = seed + batch;
    const batchRuns = deadline === undefined ? Math.min(BATCH, runs - batch * BATCH) : BATCH;
    const report = await randomSim({
      seed: batchSeed,
      runs: batchRuns,
      mutant,
      persistence,
      ...(options.path !== undefined ? { path: options.path } : {}),
      ...(deadline !== undefined ? { timeLimitMs: Math.max(1000, deadline - performance.now()) } : {}),
    });
    totals.histories += report.runs;
    totals.checks += report.checks;
    totals.cuts += report.cuts;
    addHits(report.hits);
    if (report.failed && report.counterexample && report.scenario) {
      const scenario = report.scenario;
      await mkdir(saveDir, { recursive: true });
      const file = join(saveDir, `seed-${batchSeed}${mutant ? `-${mutant}` : ''}.yaml`);
      await writeFile(file, `# ${(report.failures ?? []).join('\n# ')}\n# history: ${JSON.stringify(report.counterexample)}\n${writeScenario(scenario)}`);
      totals.violations.push(...(report.failures ?? []).map((f) => `seed ${batchSeed} path ${report.path ?? ''}: ${f}`));
      if (!options.json) {
        io.out(`counterexample (minimal history): ${JSON.stringify(report.counterexample)}`);
        for (const line of report.trace ?? []) io.out(line);
      }
      const flags = `${mutant ? ` --mutant ${mutant}` : ''}${persistence === 'sqljs' ? ' --db sqljs' : ''}`;
      totals.replay.push(`./bin/image-keeper run ${file}${flags}`);
      totals.replay.push(`./bin/image-keeper sim --seed ${batchSeed} --runs ${batchRuns} --path ${report.path ?? ''}${flags}`);
      break;
    }
    if (deadline !== undefined && performance.now() >= deadline) break;
  }
  totals.ms = performance.now() - started;
  if (options.json) {
    io.out(JSON.stringify(totals));
    return totals.violations.length > 0 ? EXIT.FAILED : EXIT.OK;
  }
  return printReport(totals, seed, io);
}

function printReport(totals: SimTotals, seed: number, io: CliIo): number {
  const seconds = totals.ms / 1000;
  io.out(`seed ${seed}`);
  io.out(`scenarios: ${totals.scenarios}`);
  io.out(`crash states explored: ${totals.crashStates}`);
  io.out(`random histories: ${totals.histories} (${(totals.histories / Math.max(seconds, 1e-9)).toFixed(0)} histories/s), power cuts in them: ${totals.cuts}`);
  io.out(`invariant checks: ${totals.checks}`);
  io.out(`crash points reached: ${CRASH_POINTS.map((p) => `${p}=${totals.hits[p] ?? 0}`).join(' ')}`);
  let code: number = EXIT.OK;
  const unreached = CRASH_POINTS.filter((p) => (totals.hits[p] ?? 0) === 0);
  if (totals.histories >= COVERAGE_MIN_HISTORIES && unreached.length > 0) {
    io.out(`coverage failure: crash points never reached: ${unreached.join(', ')}`);
    code = EXIT.FAILED;
  }
  io.out(`violations: ${totals.violations.length}`);
  for (const v of totals.violations) io.out(`  - ${v}`);
  if (totals.replay.length > 0) {
    io.out('replay with:');
    for (const r of totals.replay) io.out(`  ${r}`);
  }
  io.out(`time: ${seconds.toFixed(1)} s`);
  return totals.violations.length > 0 ? EXIT.FAILED : code;
}

/** One child process per shard (the simulator is single-threaded JS), results merged here. */
async function runWorkers(workers: number, seed: number, io: CliIo, json: boolean): Promise<number> {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--workers' && all[i - 1] !== '--workers');
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: workers }, (_, i) => {
      return new Promise<SimTotals>((resolve, reject) => {
        const child = fork(process.argv[1] ?? 'cli/main.ts', [...args, '--seed', String(seed), '--shard', `${i}/${workers}`, '--json'], {
          silent: true,
          execArgv: process.execArgv,
        });
        let out = '';
        child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr?.on('data', (d: Buffer) => io.err(d.toString().trimEnd()));
        child.on('error', reject);
        child.on('exit', () => {
          const last = out.trim().split('\n').pop() ?? '';
          try {
            resolve(JSON.parse(last) as SimTotals);
          } catch {
            reject(new KeeperError('USAGE', `sim worker ${i} printed no report: ${last.slice(0, 200)}`));
          }
        });
      });
    }),
  );
  const totals: SimTotals = { scenarios: 0, crashStates: 0, histories: 0, checks: 0, cuts: 0, violations: [], replay: [], hits: {}, ms: 0 };
  for (const r of results) {
    totals.scenarios = Math.max(totals.scenarios, r.scenarios);
    totals.crashStates += r.crashStates;
    totals.histories += r.histories;
    totals.checks += r.checks;
    totals.cuts += r.cuts;
    totals.violations.push(...r.violations);
    totals.replay.push(...r.replay);
    for (const [p, n] of Object.entries(r.hits)) totals.hits[p] = (totals.hits[p] ?? 0) + n;
  }
  totals.ms = performance.now() - started;
  if (json) {
    io.out(JSON.stringify(totals));
    return totals.violations.length > 0 ? EXIT.FAILED : EXIT.OK;
  }
  io.out(`workers: ${workers}`);
  return printReport(totals, seed, io);
}

function parseMutant(value: string | undefined): Mutant | undefined {
  if (value === undefined) return undefined;
  if (!isMutant(value)) throw new KeeperError('USAGE', `unknown mutant '${value}'; known: ${Object.keys(MUTANTS).join(', ')}`);
  return value;
}

function parsePersistence(value: string | undefined): 'memory' | 'sqljs' {
  if (value === undefined || value === 'memory' || value === 'sqljs') return value ?? 'memory';
  throw new KeeperError('USAGE', `--db wants memory or sqljs, got '${value}'`);
}

function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index >= count) throw new KeeperError('USAGE', `--shard wants i/n with 0 <= i < n, got '${value}'`);
  return { index, count };
}

function integer(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new KeeperError('USAGE', `${flag} wants a whole number, got '${value}'`);
  return Number(value);
}
