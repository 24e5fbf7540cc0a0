import { fork } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { KeeperErrorCode } from '../core/errors.js';
import { KeeperError } from '../core/errors.js';
import type { Mutant } from '../core/mutants.js';
import { isMutant, MUTANTS } from '../core/mutants.js';
import { CRASH_POINTS } from '../core/ports/crash-points.js';
import type { SweepFailure } from '../sim/explore/exhaustive.js';
import { sweep } from '../sim/explore/exhaustive.js';
import type { RandomSimReport } from '../sim/explore/random-sim.js';
import { randomSim } from '../sim/explore/random-sim.js';
import type { CompiledScenario } from '../sim/scenario/compiled-scenario.js';
import { loadScenarios } from '../sim/scenario/load-scenario.js';
import { writeScenario } from '../sim/scenario/write-scenario.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';

/** commander's camelCased flags of `image-keeper sim`. */
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
  /** Internal: a worker prints its ShardReport as one JSON line for the parent to merge. */
  readonly workerReport?: boolean;
}

/** The totals of a run: what the report prints, and `--json` prints as one line. */
export interface SimTotals {
  seed: number;
  scenarios: number;
  crashStates: number;
  histories: number;
  checks: number;
  cuts: number;
  violations: string[];
  replay: string[];
  hits: Record<string, number>;
  /** Power cuts that landed at each named crash point. */
  cutsAt: Record<string, number>;
  /** B1 over the random histories' applies: bytes downloaded, and bytes of target layers missing at their start. */
  bandwidth: { downloaded: number; missing: number };
  /** Crash points never reached in a random run large enough to reach them all (a coverage failure). */
  unreached: string[];
  ms: number;
}

/** One failure: what the report lists, and what it prints before the summary (trace, history). */
interface FailureRecord {
  readonly violations: readonly string[];
  readonly replay: readonly string[];
  readonly output: readonly string[];
  /** The scenario file that replays it, written only if this failure is the one reported. */
  readonly save?: { readonly file: string; readonly text: string };
}

/** What one shard found in one scenario. */
interface ScenarioRecord {
  readonly index: number;
  readonly crashStates: number;
  readonly checks: number;
  readonly hits: Record<string, number>;
  readonly cutsAt: Record<string, number>;
  /** The cuts of the first failing crash state (`[]`: the scenario as written fails). */
  readonly failedAt?: readonly number[];
  readonly failure?: FailureRecord;
}

/** What one shard found in one batch of random histories. */
interface BatchRecord {
  readonly batch: number;
  readonly histories: number;
  readonly checks: number;
  readonly cuts: number;
  readonly hits: Record<string, number>;
  readonly cutsAt: Record<string, number>;
  readonly bandwidth: { readonly downloaded: number; readonly missing: number };
  readonly failure?: FailureRecord;
}

/** Everything one process explored, in pieces the parent can merge in a fixed order. */
interface ShardReport {
  readonly scenarios: readonly ScenarioRecord[];
  readonly batches: readonly BatchRecord[];
}

/** Options after validation: every number checked once, before any worker starts. */
interface SimPlan {
  readonly paths: readonly string[];
  readonly mutant: Mutant | undefined;
  readonly seed: number;
  readonly workers: number;
  readonly shard: { readonly index: number; readonly count: number } | undefined;
  readonly persistence: 'memory' | 'sqljs';
  /** Random histories (undefined with --minutes: until the deadline). */
  readonly runs: number;
  readonly runsGiven: boolean;
  readonly minutes: number | undefined;
  readonly path: string | undefined;
  readonly exhaustive: boolean;
  readonly pairs: boolean;
  readonly saveDir: string;
  readonly json: boolean;
}

/** Random histories per batch (one fast-check run with its own seed). */
const BATCH = 250;

/** Random histories below this count do not prove crash-point coverage, so it is not enforced. */
const COVERAGE_MIN_HISTORIES = 100;

const MAX_WORKERS = 256;

/**
 * `image-keeper sim`: exhaustive crash sweeps of scenarios and random fault histories, with a report.
 * Deterministic from --seed; --shard i/n takes one part of the work; --workers n forks n shards and
 * merges them into the report one process would print.
 */
export async function simCommand(paths: readonly string[], options: SimOptions, io: CliIo): Promise<number> {
  const plan = parseSimOptions(paths, options);
  // Bad scenario files fail here, once, before any worker starts.
  const scenarios: CompiledScenario[] = [];
  for (const path of plan.paths) scenarios.push(...(await loadScenarios(path)));
  if (plan.runs > 0 || plan.minutes !== undefined) await checkSaveDir(plan.saveDir);

  const started = performance.now();
  if (plan.workers > 1) return runWorkers(plan, scenarios, io, started);
  const report = await explore(plan, scenarios, plan.shard);
  if (options.workerReport) {
    io.out(JSON.stringify(report));
    return EXIT.OK;
  }
  return finish(plan, scenarios, merge([report]), io, started);
}

/** Validates every option; USAGE errors name the flag and the value. */
export function parseSimOptions(paths: readonly string[], options: SimOptions): SimPlan {
  const mutant = parseMutant(options.mutant);
  const persistence = parsePersistence(options.db);
  const seed = options.seed !== undefined ? wholeNumber(options.seed, '--seed', 0) : Date.now() % 2 ** 31;
  const shard = options.shard !== undefined ? parseShard(options.shard) : undefined;
  const workersGiven =
    options.workers !== undefined ? wholeNumber(options.workers, '--workers', 1) : undefined;
  if (workersGiven !== undefined && workersGiven > MAX_WORKERS) {
    throw new KeeperError('USAGE', `--workers wants at most ${MAX_WORKERS}, got '${options.workers}'`);
  }
  const runsGiven = options.runs !== undefined;
  const runs =
    options.runs !== undefined ? wholeNumber(options.runs, '--runs', 1) : paths.length > 0 ? 0 : 200;
  let minutes: number | undefined;
  if (options.minutes !== undefined) {
    minutes = Number(options.minutes);
    if (!/^\s*[0-9.eE+]+\s*$/.test(options.minutes) || !Number.isFinite(minutes) || minutes <= 0) {
      throw new KeeperError('USAGE', `--minutes wants a positive number, got '${options.minutes}'`);
    }
  }
  if (options.pairs && !options.exhaustive) throw new KeeperError('USAGE', '--pairs goes with --exhaustive');
  const path = options.path;
  if (path !== undefined) {
    if (!/^\d+(:\d+)*$/.test(path)) {
      throw new KeeperError(
        'USAGE',
        `--path wants the path a failure printed (numbers separated by ':'), got '${path}'`,
      );
    }
    if (options.seed === undefined)
      throw new KeeperError(
        'USAGE',
        '--path goes with the --seed printed next to it (a path means nothing without its seed)',
      );
    if (paths.length > 0 || options.exhaustive)
      throw new KeeperError(
        'USAGE',
        '--path replays a random history; it does not go with scenarios or --exhaustive',
      );
    if (minutes !== undefined)
      throw new KeeperError('USAGE', '--path replays one history; it does not go with --minutes');
    if (shard !== undefined || (workersGiven ?? 1) > 1)
      throw new KeeperError(
        'USAGE',
        '--path replays one history in one process; it does not go with --shard or --workers',
      );
  }
  if (shard !== undefined && (workersGiven ?? 1) > 1) {
    throw new KeeperError(
      'USAGE',
      '--shard runs one part of the work in one process; it does not go with --workers',
    );
  }
  // Every core by default (the simulator is single-threaded JS); a shard or a replay is one process.
  const workers = shard !== undefined || path !== undefined ? 1 : (workersGiven ?? availableParallelism());
  return {
    paths,
    mutant,
    seed,
    workers,
    shard,
    persistence,
    runs,
    runsGiven,
    minutes,
    path,
    exhaustive: options.exhaustive ?? false,
    pairs: options.pairs ?? false,
    saveDir: options.saveFailures ?? 'sim-failures',
    json: options.json ?? false,
  };
}

/** What this process explores: its share of the crash states of every scenario and of the batches. */
async function explore(
  plan: SimPlan,
  scenarios: readonly CompiledScenario[],
  shard: SimPlan['shard'],
): Promise<ShardReport> {
  const scenarioRecords: ScenarioRecord[] = [];
  for (const [index, scenario] of scenarios.entries()) {
    scenarioRecords.push(await exploreScenario(plan, scenario, index, shard));
  }
  const batches: BatchRecord[] = [];
  if (plan.path !== undefined) {
    // A replay: the one fast-check run (seed and run count as printed) that the path points into.
    batches.push(await runBatch(plan, 0, plan.seed, plan.runs, undefined));
    return { scenarios: scenarioRecords, batches };
  }
  const started = performance.now();
  const deadline = plan.minutes !== undefined ? started + plan.minutes * 60_000 : undefined;
  const index = shard?.index ?? 0;
  const count = shard?.count ?? 1;
  // Histories come in batches of BATCH runs; batch b has seed seed+b, and shard i takes the batches
  // b = i, i+n, ...: the histories explored depend on the seed and the run count, never on how many
  // workers or machines share them.
  const total = deadline === undefined ? Math.ceil(plan.runs / BATCH) : Number.POSITIVE_INFINITY;
  for (let batch = index; batch < total; batch += count) {
    const runs = deadline === undefined ? Math.min(BATCH, plan.runs - batch * BATCH) : BATCH;
    const record = await runBatch(plan, batch, plan.seed + batch, runs, deadline);
    batches.push(record);
    if (record.failure) break;
    if (deadline !== undefined && performance.now() >= deadline) break;
  }
  return { scenarios: scenarioRecords, batches };
}

/**
 * One scenario: the run without cuts first (every shard runs it, so each knows whether the scenario
 * fails as written; only the shard owning crash index 0 reports it), then with --exhaustive this
 * shard's crash states, stopping at its first failure.
 */
async function exploreScenario(
  plan: SimPlan,
  scenario: CompiledScenario,
  index: number,
  shard: SimPlan['shard'],
): Promise<ScenarioRecord> {
  const owner = shard === undefined || shard.index === 0;
  const common = { mutant: plan.mutant, persistence: plan.persistence };
  const baseline = await sweep(scenario, { ...common, pairs: false, onlyBaseline: true });
  const baselineFailure = baseline.failures[0];
  if (!plan.exhaustive || baselineFailure !== undefined) {
    if (!owner) return { index, crashStates: 0, checks: 0, hits: {}, cutsAt: {} };
    return {
      index,
      crashStates: 0,
      checks: baseline.checks,
      hits: Object.fromEntries(baseline.hits),
      cutsAt: {},
      ...(baselineFailure ? { failedAt: [], failure: scenarioFailure(plan, scenario, baselineFailure) } : {}),
    };
  }
  const report = await sweep(scenario, {
    ...common,
    pairs: plan.pairs,
    stopOnFailure: true,
    ...(shard ? { shard } : {}),
  });
  const first = report.failures[0];
  return {
    index,
    crashStates: report.crashStates,
    checks: report.checks,
    hits: Object.fromEntries(report.hits),
    cutsAt: Object.fromEntries(report.cutsAt),
    ...(first ? { failedAt: first.cutAtCalls, failure: scenarioFailure(plan, scenario, first) } : {}),
  };
}

function scenarioFailure(plan: SimPlan, scenario: CompiledScenario, failure: SweepFailure): FailureRecord {
  const cuts = failure.cutAtCalls;
  const where = cuts.length === 0 ? 'without any cut' : `with cuts at steps ${cuts.join(', ')}`;
  const flags = replayFlags(plan);
  const replay =
    cuts.length === 0
      ? `./bin/image-keeper run ${scenario.file}${flags}   (fails as written)`
      : `./bin/image-keeper sim ${scenario.file} --exhaustive${plan.pairs ? ' --pairs' : ''}${flags} --workers 1   (fails ${where})`;
  return {
    violations: [`${scenario.name} ${where}: ${failure.result.failures.join('; ')}`],
    replay: [replay],
    output: failure.result.trace,
  };
}

async function runBatch(
  plan: SimPlan,
  batch: number,
  seed: number,
  runs: number,
  deadline: number | undefined,
): Promise<BatchRecord> {
  const report = await randomSim({
    seed,
    runs,
    mutant: plan.mutant,
    persistence: plan.persistence,
    ...(plan.path !== undefined ? { path: plan.path } : {}),
    ...(deadline !== undefined ? { timeLimitMs: Math.max(1000, deadline - performance.now()) } : {}),
  });
  const record = {
    batch,
    histories: report.runs,
    checks: report.checks,
    cuts: report.cuts,
    hits: Object.fromEntries(report.hits),
    cutsAt: Object.fromEntries(report.cutsAt),
    bandwidth: report.bandwidth,
  };
  if (!report.failed || !report.counterexample || !report.scenario) return record;
  return { ...record, failure: failureOf(plan, seed, runs, report) };
}

/**
 * The failing history as a scenario file that `run` replays, and how to replay it. The file is
 * written by `finish`, once the failure is the one reported (workers' other failures leave no file).
 */
function failureOf(plan: SimPlan, seed: number, runs: number, report: RandomSimReport): FailureRecord {
  const history = report.counterexample;
  const scenario = report.scenario;
  if (history === undefined || scenario === undefined) throw new Error('failureOf: no counterexample');
  const failures = report.failures ?? [];
  const file = join(plan.saveDir, `seed-${seed}${plan.mutant ? `-${plan.mutant}` : ''}.yaml`);
  // The cuts before the k-th port call travel in the file, so `run` replays the very same history.
  const text = writeScenario({ ...scenario, cutAtCalls: history.cutAtCalls });
  const header = `${failures.map((f) => `# ${f.replace(/\n/g, ' ')}`).join('\n')}\n# history: ${JSON.stringify(history)}\n`;
  const flags = replayFlags(plan);
  return {
    save: { file, text: header + text },
    violations: failures.map((f) => `seed ${seed} path ${report.path ?? ''}: ${f}`),
    replay: [
      `./bin/image-keeper run ${file}${flags}`,
      `./bin/image-keeper sim --seed ${seed} --runs ${runs} --path ${report.path ?? ''}${flags}`,
    ],
    output: [`counterexample (minimal history): ${JSON.stringify(history)}`, ...(report.trace ?? [])],
  };
}

async function writeFailureFile(
  dir: string,
  save: { readonly file: string; readonly text: string },
): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(save.file, save.text);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new KeeperError(
      code === 'ENOSPC' ? 'DISK_FULL' : 'USAGE',
      `--save-failures: cannot write ${save.file}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

function replayFlags(plan: SimPlan): string {
  return `${plan.mutant ? ` --mutant ${plan.mutant}` : ''}${plan.persistence === 'sqljs' ? ' --db sqljs' : ''}`;
}

interface MergedRecords {
  readonly scenarios: readonly ScenarioRecord[];
  readonly batches: readonly BatchRecord[];
  /** Scenarios whose sweep failed at a cut in some shard: the counts depend on where each shard stopped. */
  readonly unsettled: readonly number[];
}

/**
 * Merges shard reports into what one process would have found: per scenario the sums and the first
 * failing crash state in sweep order; random batches up to the first failing one (every shard has
 * finished its batches below it, and one process stops there too).
 */
function merge(reports: readonly ShardReport[]): MergedRecords {
  const byIndex = new Map<number, ScenarioRecord[]>();
  for (const report of reports)
    for (const r of report.scenarios) byIndex.set(r.index, [...(byIndex.get(r.index) ?? []), r]);
  const unsettled: number[] = [];
  const scenarios = [...byIndex.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, records]) => {
      const failed = records
        .filter((r) => r.failedAt !== undefined)
        .sort((a, b) => compareCuts(a.failedAt ?? [], b.failedAt ?? []));
      const first = failed[0];
      if (records.length > 1 && first !== undefined && (first.failedAt ?? []).length > 0)
        unsettled.push(index);
      return {
        index,
        crashStates: sum(records.map((r) => r.crashStates)),
        checks: sum(records.map((r) => r.checks)),
        hits: addHits(records.map((r) => r.hits)),
        cutsAt: addHits(records.map((r) => r.cutsAt)),
        ...(first?.failedAt !== undefined && first.failure
          ? { failedAt: first.failedAt, failure: first.failure }
          : {}),
      };
    });
  const batches = reports.flatMap((r) => r.batches).sort((a, b) => a.batch - b.batch);
  const firstFailed = batches.find((b) => b.failure !== undefined)?.batch;
  return {
    scenarios,
    batches: firstFailed === undefined ? batches : batches.filter((b) => b.batch <= firstFailed),
    unsettled,
  };
}

/** Sweep order: by first cut, then the run with that cut alone before its pairs. */
function compareCuts(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
  return a.length - b.length;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function addHits(all: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const hits of all) for (const [p, n] of Object.entries(hits)) out[p] = (out[p] ?? 0) + n;
  return out;
}

/** Prints the failures' traces and the report (or the JSON totals); the exit code. */
async function finish(
  plan: SimPlan,
  scenarios: readonly CompiledScenario[],
  records: Pick<MergedRecords, 'scenarios' | 'batches'>,
  io: CliIo,
  started: number,
): Promise<number> {
  const totals: SimTotals = {
    seed: plan.seed,
    scenarios: scenarios.length,
    crashStates: sum(records.scenarios.map((r) => r.crashStates)),
    histories: sum(records.batches.map((b) => b.histories)),
    checks: sum([...records.scenarios, ...records.batches].map((r) => r.checks)),
    cuts: sum(records.batches.map((b) => b.cuts)),
    violations: [],
    replay: [],
    hits: addHits([...records.scenarios, ...records.batches].map((r) => r.hits)),
    cutsAt: addHits([...records.scenarios, ...records.batches].map((r) => r.cutsAt)),
    unreached: [],
    bandwidth: {
      downloaded: sum(records.batches.map((b) => b.bandwidth.downloaded)),
      missing: sum(records.batches.map((b) => b.bandwidth.missing)),
    },
    ms: performance.now() - started,
  };
  // A random run large enough to reach every crash point that misses one fails: the histories no
  // longer exercise part of the protocol (in text and in JSON alike).
  const histories = sum(records.batches.map((b) => b.histories));
  if (histories >= COVERAGE_MIN_HISTORIES)
    totals.unreached = CRASH_POINTS.filter((p) => (totals.hits[p] ?? 0) === 0);
  for (const record of [...records.scenarios, ...records.batches]) {
    if (!record.failure) continue;
    if (record.failure.save) await writeFailureFile(plan.saveDir, record.failure.save);
    totals.violations.push(...record.failure.violations);
    totals.replay.push(...record.failure.replay);
    if (!plan.json) for (const line of record.failure.output) io.out(line);
  }
  if (plan.json) {
    io.out(JSON.stringify(totals));
    return totals.violations.length > 0 || totals.unreached.length > 0 ? EXIT.FAILED : EXIT.OK;
  }
  return printReport(totals, plan.workers, io);
}

function printReport(totals: SimTotals, workers: number, io: CliIo): number {
  const seconds = totals.ms / 1000;
  io.out(`seed ${totals.seed}`);
  io.out(`scenarios: ${totals.scenarios}`);
  io.out(`crash states explored: ${totals.crashStates}`);
  io.out(`random histories: ${totals.histories}, power cuts in them: ${totals.cuts}`);
  io.out(`invariant checks: ${totals.checks}`);
  if (totals.histories > 0 && totals.bandwidth.missing > 0) {
    const { downloaded, missing } = totals.bandwidth;
    io.out(
      `B1 bandwidth: ${downloaded} bytes downloaded for ${missing} bytes of target layers missing at each apply's start (ratio ${(downloaded / missing).toFixed(3)})`,
    );
  }
  io.out(`crash points reached: ${CRASH_POINTS.map((p) => `${p}=${totals.hits[p] ?? 0}`).join(' ')}`);
  io.out(`power cuts at crash points: ${CRASH_POINTS.map((p) => `${p}=${totals.cutsAt[p] ?? 0}`).join(' ')}`);
  let code: number = EXIT.OK;
  if (totals.unreached.length > 0) {
    io.out(`coverage failure: crash points never reached: ${totals.unreached.join(', ')}`);
    code = EXIT.FAILED;
  }
  io.out(`violations: ${totals.violations.length}`);
  for (const v of totals.violations) io.out(`  - ${v}`);
  if (totals.replay.length > 0) {
    io.out('replay with:');
    for (const r of totals.replay) io.out(`  ${r}`);
  }
  const rate =
    totals.histories > 0 ? `, ${(totals.histories / Math.max(seconds, 1e-9)).toFixed(0)} histories/s` : '';
  io.out(`time: ${seconds.toFixed(1)} s on ${workers} worker${workers === 1 ? '' : 's'}${rate}`);
  return totals.violations.length > 0 ? EXIT.FAILED : code;
}

/**
 * One child process per shard (the simulator is single-threaded JS), merged here into the report one
 * process prints. A scenario whose sweep failed at a cut is swept again here up to its first failure,
 * so its counts too are those of one process (each shard stopped at its own first failure).
 */
async function runWorkers(
  plan: SimPlan,
  scenarios: readonly CompiledScenario[],
  io: CliIo,
  started: number,
): Promise<number> {
  const args = workerArgs(plan);
  const children: ReturnType<typeof fork>[] = [];
  const outcomes = await Promise.all(
    Array.from({ length: plan.workers }, (_, i) => {
      return new Promise<{ report?: ShardReport; stderr: string[]; exit: number | null }>((done) => {
        const child = fork(
          process.argv[1] ?? 'cli/main.ts',
          [...args, '--shard', `${i + 1}/${plan.workers}`],
          {
            silent: true,
            execArgv: process.execArgv,
          },
        );
        children.push(child);
        let out = '';
        let err = '';
        child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
        child.on('error', (error) =>
          done({
            stderr: [`image-keeper: ERROR: cannot start sim worker ${i + 1}: ${error.message}`],
            exit: null,
          }),
        );
        child.on('exit', (exit) => {
          const stderr = err.split('\n').filter((l) => l.trim() !== '');
          const last = out.trim().split('\n').pop() ?? '';
          let report: ShardReport | undefined;
          try {
            report = exit === 0 ? (JSON.parse(last) as ShardReport) : undefined;
          } catch {
            report = undefined;
          }
          // One worker failing fails the run: stop the others rather than wait for them.
          if (report === undefined)
            for (const other of children) if (other !== child && other.exitCode === null) other.kill();
          done({ ...(report ? { report } : {}), stderr, exit });
        });
      });
    }),
  );
  // Warnings each worker printed: once.
  const seen = new Set<string>();
  const failed =
    outcomes.find((o) => o.report === undefined && o.stderr.length > 0) ??
    outcomes.find((o) => o.report === undefined);
  if (failed) throw workerFailure(failed.stderr, failed.exit);
  for (const line of outcomes.flatMap((o) => o.stderr)) {
    if (!seen.has(line)) io.err(line);
    seen.add(line);
  }
  const merged = merge(outcomes.flatMap((o) => (o.report ? [o.report] : [])));
  const records = { scenarios: [...merged.scenarios], batches: merged.batches };
  for (const index of merged.unsettled) {
    const scenario = scenarios[index];
    if (scenario !== undefined)
      records.scenarios[index] = await exploreScenario(plan, scenario, index, undefined);
  }
  return finish(plan, scenarios, records, io, started);
}

/** The arguments of a worker: the validated plan, spelled out (the parent's argv may use any form). */
function workerArgs(plan: SimPlan): string[] {
  return [
    'sim',
    ...plan.paths,
    '--seed',
    String(plan.seed),
    ...(plan.exhaustive ? ['--exhaustive'] : []),
    ...(plan.pairs ? ['--pairs'] : []),
    ...(plan.runsGiven ? ['--runs', String(plan.runs)] : []),
    ...(plan.minutes !== undefined ? ['--minutes', String(plan.minutes)] : []),
    ...(plan.mutant ? ['--mutant', plan.mutant] : []),
    '--db',
    plan.persistence,
    '--save-failures',
    plan.saveDir,
    '--worker-report',
  ];
}

/** A worker that printed no report: its own one-line error, once, or what it printed. */
function workerFailure(stderr: readonly string[], exit: number | null): Error {
  const first = stderr.find((l) => /^image-keeper: [A-Z_]+: /.test(l));
  const match = first === undefined ? null : /^image-keeper: ([A-Z_]+): (.*)$/.exec(first);
  if (match?.[1] !== undefined && match[2] !== undefined && match[1] !== 'ERROR') {
    return new KeeperError(match[1] as KeeperErrorCode, match[2]);
  }
  const printed = stderr.slice(0, 20).join(' | ');
  return new KeeperError(
    'INVARIANT_VIOLATED',
    `a sim worker failed (exit ${exit ?? 'signal'}) without a report${printed ? `: ${printed}` : ''}`,
  );
}

/** The folder for failure files must be one we can create and write, checked before any run. */
async function checkSaveDir(dir: string): Promise<void> {
  const wanted = resolve(dir);
  for (let probe = wanted; ; probe = dirname(probe)) {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(probe)).isDirectory();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dirname(probe) !== probe) continue;
      throw new KeeperError(
        'USAGE',
        `--save-failures ${dir}: cannot use ${probe} (${code ?? (error as Error).message})`,
      );
    }
    if (!isDirectory) {
      throw new KeeperError(
        'USAGE',
        probe === wanted
          ? `--save-failures ${dir}: exists and is not a folder`
          : `--save-failures ${dir}: ${probe} is not a folder`,
      );
    }
    try {
      await access(probe, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw new KeeperError(
        'USAGE',
        `--save-failures ${dir}: cannot write in ${probe} (${(error as { code?: string }).code ?? 'no access'})`,
      );
    }
    return;
  }
}

function parseMutant(value: string | undefined): Mutant | undefined {
  if (value === undefined) return undefined;
  if (!isMutant(value))
    throw new KeeperError('USAGE', `unknown mutant '${value}'; known: ${Object.keys(MUTANTS).join(', ')}`);
  return value;
}

function parsePersistence(value: string | undefined): 'memory' | 'sqljs' {
  if (value === undefined || value === 'memory' || value === 'sqljs') return value ?? 'memory';
  throw new KeeperError('USAGE', `--db wants memory or sqljs, got '${value}'`);
}

/** `--shard i/n`, 1-based like vitest's: shard 1/2 and 2/2 together cover everything. */
function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d{1,6})\/(\d{1,6})$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index < 1 || index > count) {
    throw new KeeperError(
      'USAGE',
      `--shard wants i/n with 1 <= i <= n (shards 1/2 and 2/2 make the whole), got '${value}'`,
    );
  }
  return { index: index - 1, count };
}

function wholeNumber(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new KeeperError(
      'USAGE',
      `${flag} wants a whole number${min > 0 ? ` of at least ${min}` : ''}, got '${value}'`,
    );
  }
  return n;
}
