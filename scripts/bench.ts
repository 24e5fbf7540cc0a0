/**
 * `npm run bench`: machine-readable figures (one JSON object per line) and ratios against baselines
 * measured in the same run, so numbers from different machines compare.
 *  - plan: planning time for targets of 10..10,000 images with five times as many engine images, and
 *    the growth per tenfold step (should stay near linear: at most 15x);
 *  - sim: random fault histories per second on one core;
 *  - sweep: the exhaustive single-and-double crash sweep of a 10-image update, on one core and on
 *    every core (worker processes).
 * Baseline: a fixed CPU workload (hashing) timed in the same process, reported as `baselineMs`.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Container } from '../core/model/container.js';
import type { EngineImage } from '../core/model/engine-image.js';
import type { ImageRow } from '../core/model/image-row.js';
import type { TargetService } from '../core/model/target.js';
import { plan } from '../core/planner/plan.js';
import { sweep } from '../sim/explore/exhaustive.js';
import { randomSim } from '../sim/explore/random-sim.js';
import { loadScenario } from '../sim/scenario/load-scenario.js';

const only = process.argv.slice(2);
const want = (name: string): boolean => only.length === 0 || only.includes(name);
const emit = (figure: Record<string, unknown>): void => console.log(JSON.stringify(figure));
const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

function baselineMs(): number {
  const data = Buffer.alloc(1 << 20, 7);
  const started = performance.now();
  for (let i = 0; i < 50; i++) createHash('sha256').update(data).digest();
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function planningInput(n: number) {
  const services: TargetService[] = [];
  const rows: ImageRow[] = [];
  const images: EngineImage[] = [];
  const containers: Container[] = [];
  for (let i = 0; i < n * 5; i++) {
    const digest = sha(`m${i}`);
    const name = `127.0.0.1:5000/fleet/s${i % n}@${digest}`;
    const id = sha(`c${i}`);
    images.push({
      id,
      repoTags: [],
      repoDigests: [name],
      layers: [{ digest: sha(`l${i}`), size: 1000 }],
      size: 1000,
    });
    rows.push({
      id: i + 1,
      name,
      appId: 1 + (i % 50),
      serviceId: i % n,
      serviceName: `s${i % n}`,
      imageId: i,
      releaseId: 1,
      commit: i < n ? 'c2' : `c1-${i}`,
      dockerImageId: id,
    });
    if (i < n) {
      services.push({
        name,
        appId: 1 + (i % 50),
        serviceId: i,
        serviceName: `s${i}`,
        imageId: i,
        releaseId: 1,
        commit: 'c2',
        strategy: 'download-then-kill',
      });
      containers.push({
        id: `k${i}`,
        imageId: id,
        running: true,
        service: { appId: 1 + (i % 50), serviceId: i, serviceName: `s${i}`, commit: 'c2' },
      });
    }
  }
  return {
    rows,
    images,
    containers,
    target: { services, dependent: [] },
    intermediate: false,
    dependent: [],
    deltas: true,
    systemApps: [],
    fetchInFlight: false,
    partialBytes: 0,
  };
}

async function main(): Promise<void> {
  const base = median([baselineMs(), baselineMs(), baselineMs()]);
  emit({
    bench: 'baseline',
    what: 'sha256 of 50 MiB',
    baselineMs: +base.toFixed(2),
    cores: availableParallelism(),
  });

  if (want('plan')) {
    let previous: number | undefined;
    const growth: number[] = [];
    for (const n of [10, 100, 1000, 10_000]) {
      const input = planningInput(n);
      const reps = n >= 10_000 ? 5 : n >= 1000 ? 20 : 200;
      plan(input);
      const times: number[] = [];
      let steps = 0;
      for (let r = 0; r < reps; r++) {
        // Collect before each rep when allowed (node --expose-gc), so one rep does not pay for another's garbage.
        (globalThis as { gc?: () => void }).gc?.();
        const started = performance.now();
        steps = plan(input).steps.length;
        times.push(performance.now() - started);
      }
      const ms = median(times);
      const ratio = previous === undefined ? undefined : ms / previous;
      if (ratio !== undefined) growth.push(ratio);
      emit({
        bench: 'plan',
        targetImages: n,
        engineImages: n * 5,
        rows: n * 5,
        steps,
        ms: +ms.toFixed(3),
        ratioToBaseline: +(ms / base).toFixed(4),
        growthPerTenfold: ratio === undefined ? null : +ratio.toFixed(2),
      });
      previous = ms;
    }
    const worst = Math.max(...growth);
    emit({ bench: 'plan-growth', worstGrowthPerTenfold: +worst.toFixed(2), aim: 15, ok: worst <= 15 });
  }

  if (want('sim')) {
    // Warm the JIT first: a soak runs for minutes, so the steady rate is the figure that matters.
    await randomSim({ seed: 1, runs: 1500 });
    const report = await randomSim({ seed: 2, runs: 3000 });
    const perSecond = report.runs / (report.ms / 1000);
    emit({
      bench: 'sim-histories',
      runs: report.runs,
      ms: +report.ms.toFixed(0),
      historiesPerSecondPerCore: +perSecond.toFixed(0),
      portCallsPerHistory: +(report.portCalls / report.runs).toFixed(1),
      cutsPerHistory: +(report.cuts / report.runs).toFixed(2),
      aim: 2000,
      ratioToBaseline: +(report.ms / report.runs / base).toFixed(5),
    });
  }

  if (want('sweep')) {
    const scenario = await loadScenario('scenarios/sweeps/ten-image-update.yaml');
    const started = performance.now();
    const report = await sweep(scenario, { pairs: true });
    const ms = performance.now() - started;
    emit({
      bench: 'sweep-10-images-one-core',
      crashStates: report.crashStates,
      failures: report.failures.length,
      ms: +ms.toFixed(0),
      statesPerSecond: +(report.crashStates / (ms / 1000)).toFixed(0),
      ratioToBaseline: +(ms / base).toFixed(1),
    });
    const workers = availableParallelism();
    const wStarted = performance.now();
    const out = execFileSync(
      './bin/image-keeper',
      [
        'sim',
        'scenarios/sweeps/ten-image-update.yaml',
        '--exhaustive',
        '--pairs',
        '--workers',
        String(workers),
        '--seed',
        '1',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    const wMs = performance.now() - wStarted;
    const totals = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
      crashStates?: number;
      violations?: unknown[];
    };
    emit({
      bench: 'sweep-10-images-all-cores',
      workers,
      crashStates: totals.crashStates,
      violations: totals.violations?.length,
      ms: +wMs.toFixed(0),
      aimMs: 10_000,
      ok: wMs < 10_000,
      ratioToBaseline: +(wMs / base).toFixed(1),
    });
  }
}

await main();
