import { isKeeperError, isPowerCut } from '../../core/errors.js';
import { isDangling } from '../../core/model/engine-image.js';
import { describeStep } from '../../core/model/plan-step.js';
import type { Mutant } from '../../core/mutants.js';
import type { KeeperEvent } from '../../core/ports/event-sink.js';
import type { Persistence } from '../device/fake-device.js';
import { FakeDevice } from '../device/fake-device.js';
import type { ArmedCut } from '../device/power-controller.js';
import { InvariantMonitor } from '../invariants/invariant-monitor.js';
import { checkFinalInvariants } from '../invariants/final-invariants.js';
import {
  b1Bandwidth,
  b1MissingBytes,
  b1RefetchBytes,
  d1PeakDiskOfApply,
  p1DbOpensToBeforeOrAfter,
  r1NoPendingRowsAfterStartup,
  s2RowsPointToImages,
} from '../invariants/invariants.js';
import type { CompiledScenario, ScenarioStep } from '../scenario/compiled-scenario.js';
import { makeSymbolizer } from './symbolizer.js';

export interface RunOptions {
  readonly mutant?: Mutant | undefined;
  /** Extra cuts on top of the scenario's own: at named crash points, or before the k-th port call. */
  readonly cuts?: readonly ArmedCut[];
  readonly cutAtCalls?: readonly number[];
  /** Power cuts the device survives before the run gives up (recovery itself can be cut). */
  readonly maxCuts?: number;
  /** Where the device keeps its image table; 'sqljs' also cuts power inside DB persistence. */
  readonly persistence?: Persistence;
  /** Generated histories may arm cuts the run never reaches; a scenario file may not (default false). */
  readonly allowUnreachedCuts?: boolean;
  /**
   * Check the scenario's byte and disk budgets (default true). A crash sweep turns them off: a cut can
   * move when an injected fault fires, and the B1/D1 invariants bound bandwidth and disk in every state.
   */
  readonly checkBudgets?: boolean;
  /** Record the readable trace (default true); sweeps turn it off and re-run a failure with it on. */
  readonly trace?: boolean;
}

export interface RunResult {
  readonly scenario: CompiledScenario;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly trace: readonly string[];
  readonly final: readonly string[];
  readonly bytesDownloaded: number;
  readonly peakDisk: number;
  readonly cuts: number;
  /** Steps made: port calls, and reaches of interior crash points (see INTERIOR_POINTS). */
  readonly portCalls: number;
  /** Steps before the end-of-run checks: the positions where a cut by step number can land. */
  readonly cuttableSteps: number;
  /**
   * Of those, the first step after each possible change of durable state: a cut at any other step is
   * the same crash state as a cut at the distinct step before it (only reads lie between).
   */
  readonly distinctSteps: readonly number[];
  /** B1 summed over the applies: bytes downloaded, and bytes of the target's layers missing at each start (the bound). */
  readonly bandwidth: { readonly downloaded: number; readonly missing: number };
  /** Cuts by step number (options.cutAtCalls) that fired. */
  readonly numberedCuts: number;
  /** Cuts that landed at each named crash point. */
  readonly cutsAt: ReadonlyMap<string, number>;
  /** Invariant checks made during the run. */
  readonly checks: number;
  /** How often each named crash point was reached. */
  readonly hits: ReadonlyMap<string, number>;
  /** Indices (in scenario.steps) of power-cut steps that never fired: a saved failure leaves them out. */
  readonly unfiredCutSteps: readonly number[];
  readonly device: FakeDevice;
}

/**
 * Runs a scenario on the fakes: boot (startup cleanup, apply of the persisted target), then each step;
 * a power cut is followed by a restart over the durable state. Every port call is watched by the
 * invariant monitor; the expectations are checked at the end.
 */
export async function runScenario(scenario: CompiledScenario, options: RunOptions = {}): Promise<RunResult> {
  const sym = makeSymbolizer(scenario.symbols);
  const trace: string[] = [];
  const failures: string[] = [];
  const tracing = options.trace ?? true;
  const log = (line: string): void => {
    if (tracing) trace.push(sym(line));
  };
  const device = await FakeDevice.create(scenario, {
    mutant: options.mutant,
    onEvent: tracing ? (e) => traceEvent(e, log) : undefined,
    persistence: options.persistence ?? 'memory',
  });
  const monitor = new InvariantMonitor(device, (v) => log(`!! ${v}`));
  const power = device.power;
  for (const cut of options.cuts ?? []) power.arm(cut);
  for (const k of [...(scenario.cutAtCalls ?? []), ...(options.cutAtCalls ?? [])]) power.cutAtCall(k);
  const maxCuts = options.maxCuts ?? 10;
  const armedByScenario: { step: ScenarioStep; index: number; fired: () => boolean }[] = [];

  const alwaysPresent = new Set(scenario.expect.alwaysPresent);
  if (alwaysPresent.size > 0) {
    const previous = power.afterCall;
    power.afterCall = (label, args, result, ok) => {
      previous?.(label, args, result, ok);
      const ids = new Set(device.engine.peek().images.map((i) => i.id));
      for (const id of alwaysPresent) {
        if (!ids.has(id)) {
          // Once, at the call that lost it.
          alwaysPresent.delete(id);
          failures.push(
            `expected ${sym(id)} to be present at every step; gone after port call #${power.calls} ${label}`,
          );
        }
      }
    };
  }

  const applyErrors: string[] = [];
  /** B1's figures summed over the applies: bytes downloaded, and bytes of target layers missing at their start. */
  const bandwidth = { downloaded: 0, missing: 0 };
  const recordError = (what: string, error: unknown): void => {
    const code = isKeeperError(error) ? error.code : 'ERROR';
    log(`${what} failed: ${code}: ${(error as Error).message}`);
    if (isKeeperError(error) && error.code === 'INVARIANT_VIOLATED')
      failures.push(sym(`assertion: ${error.message}`));
    if (!isKeeperError(error))
      failures.push(sym(`${what} crashed: ${(error as Error).stack ?? String(error)}`));
    applyErrors.push(`${what}: ${code}`);
  };

  /** Restart after a cut: new core, startup cleanup, apply the persisted target; cuts may hit again. */
  const afterStartup = (): void => {
    const problem =
      s2RowsPointToImages(monitor.snapshot()) ?? r1NoPendingRowsAfterStartup(monitor.snapshot());
    if (problem) {
      log(`!! ${problem}`);
      failures.push(problem);
    }
  };
  /** Whether the last recovery resumed the interrupted target (see `resume` in recover). */
  let recoveryResumed = true;
  const recover = async (): Promise<void> => {
    // A recovery that does not resume (the cloud moved on while the device was down) stays so when a
    // further cut hits it: the device is still down, and the next target still comes from the next step.
    let resume = power.lastCutResumes;
    for (;;) {
      if (power.cuts > maxCuts) {
        failures.push(`more than ${maxCuts} power cuts: gave up`);
        return;
      }
      // What the DB held when power went, and before the commit in flight (P1 compares both).
      const atCut = device.fs ? structuredClone(device.db.peek()) : undefined;
      const beforeCommit = monitor.dbBeforeMutation ?? atCut;
      let keeper: Awaited<ReturnType<FakeDevice['boot']>>;
      try {
        keeper = await device.boot();
      } catch (error) {
        if (isPowerCut(error)) continue;
        const problem = `P1: after the cut the DB does not open: ${(error as Error).message}`;
        log(`!! ${problem}`);
        failures.push(problem);
        return;
      }
      if (atCut && beforeCommit) {
        const p1 = p1DbOpensToBeforeOrAfter(beforeCommit, atCut, device.db.peek());
        if (p1) {
          log(`!! ${p1}`);
          failures.push(p1);
        }
      }
      monitor.onBoot();
      resume = resume && power.lastCutResumes;
      recoveryResumed = resume;
      log(
        `-- restart #${device.boots}${resume ? '' : ' (startup cleanup only; the next target comes from the next step)'}`,
      );
      try {
        await keeper.startup();
        afterStartup();
        if (resume) await keeper.apply(null);
        if (swallowed('recovery')) continue;
        return;
      } catch (error) {
        if (!isPowerCut(error)) return recordError('recovery', error);
        log(`!! ${error.message}`);
      }
    }
  };
  /**
   * A cut the core caught and carried on from: power stays out, so its next step threw again, and the
   * core still returned as if all went well. Reported, then the device restarts like after any cut.
   */
  const swallowed = (what: string): boolean => {
    if (!power.off) return false;
    const problem = `${what} returned normally after a power cut: the core swallowed the cut`;
    log(`!! ${problem}`);
    failures.push(problem);
    return true;
  };
  const guarded = async (what: string, action: () => Promise<unknown>): Promise<void> => {
    try {
      await action();
      if (swallowed(what)) await recover();
    } catch (error) {
      if (!isPowerCut(error)) return recordError(what, error);
      log(`!! ${error.message}`);
      await recover();
    }
  };

  /** A (re)start of the device: a fresh core, startup cleanup, then the persisted target. */
  const start = async (): Promise<void> => {
    const keeper = await device.boot();
    monitor.onBoot();
    await keeper.startup();
    afterStartup();
    await keeper.apply(null);
  };

  log(`== ${scenario.name}${options.mutant ? ` [mutant ${options.mutant}]` : ''}`);
  await guarded('boot', start);

  for (const step of scenario.steps) {
    if (tracing) log(`> ${describeScenarioStep(step, sym)}`);
    // A scenario step may change the device behind the core's back (a container stops, a fault arms).
    power.changed();
    switch (step.kind) {
      case 'apply': {
        const diskBefore = new Map(device.engine.peekLayers());
        const layersBefore = new Set(diskBefore.keys());
        device.engine.counters.windowPeakDisk = device.engine.diskBytes();
        // A cut may make the device resume its persisted target first: both count as what it may fetch.
        const persisted = device.db.peek().target;
        // What the apply may download: the new target's missing layers; and, if a cut comes before the
        // new target is persisted, the old target's too, since the restarted device finishes that first.
        const missingNew = b1MissingBytes([step.target], scenario.registry, layersBefore, monitor.snapshot());
        const missingBoth = persisted
          ? b1MissingBytes([step.target, persisted], scenario.registry, layersBefore, monitor.snapshot())
          : missingNew;
        let finishedOld = false;
        monitor.targetPersisted = false;
        const downloadedBefore = device.engine.counters.bytesDownloaded;
        monitor.discardedLayers.clear();
        // The cloud keeps sending the target: an apply cut short is applied again after the restart.
        // An intermediate target (a purge) is not: the persisted target is the authority after a cut.
        for (let attempt = 0; ; attempt++) {
          const cutsBefore = power.cuts;
          monitor.applying = step.target;
          monitor.applyingIntermediate = step.intermediate;
          await guarded('apply', () => device.keeper.apply(step.target, { intermediate: step.intermediate }));
          if (power.cuts > cutsBefore && !monitor.targetPersisted) finishedOld = true;
          monitor.applying = null;
          monitor.applyingIntermediate = false;
          if (power.cuts === cutsBefore || step.intermediate || !recoveryResumed || attempt >= maxCuts) break;
          log('> target received again after the restart');
        }
        const finishedTargets =
          persisted && (finishedOld || step.intermediate) ? [step.target, persisted] : [step.target];
        const missing = finishedTargets.length > 1 ? missingBoth : missingNew;
        const d1 = d1PeakDiskOfApply(
          device.engine.counters.windowPeakDisk,
          diskBefore,
          finishedTargets,
          scenario.registry,
        );
        if (d1) {
          log(`!! ${d1}`);
          failures.push(d1);
        }
        if (!step.intermediate) {
          // A cut before the new target was persisted makes the device finish the old one first, which
          // may throw away layers the new one then fetches again: exactly those, once. (Per layer, B1 in
          // the monitor has already checked each was thrown away while the persisted target let it go.)
          const refetch = b1RefetchBytes(
            step.target,
            scenario.registry,
            layersBefore,
            monitor.discardedLayers,
          );
          const downloaded = device.engine.counters.bytesDownloaded - downloadedBefore;
          bandwidth.downloaded += downloaded;
          bandwidth.missing += missing + refetch;
          const b1 = b1Bandwidth(downloaded, missing + refetch);
          if (b1) {
            log(`!! ${b1}`);
            failures.push(b1);
          }
        }
        break;
      }
      case 'restart':
        await guarded('restart', start);
        break;
      case 'power-cut': {
        const before = power.cuts;
        power.arm({ at: step.at, match: step.match, occurrence: step.occurrence, resume: step.resume });
        armedByScenario.push({ step, index: scenario.steps.indexOf(step), fired: () => power.cuts > before });
        break;
      }
      case 'idle':
        await guarded('idle', () => device.keeper.idleTick());
        break;
      case 'idle-during-pull': {
        let done = false;
        device.engine.betweenLayers = async (ref, layers) => {
          if (done || !ref.includes(step.ref) || layers < step.afterLayers) return;
          done = true;
          // The hook is used up: a cut from here on is a new crash state (see PowerController.distinctSteps).
          power.changed();
          log(`  idle tick while ${ref} is in flight`);
          await device.keeper.idleTick();
        };
        break;
      }
      case 'container':
        applyContainerStep(device, step);
        break;
      case 'add-container':
        device.engine.addContainer(step.container);
        break;
      case 'wipe-db':
        await device.wipeDb();
        await guarded('restart', start);
        break;
      case 'delete-rows': {
        await power.offstage(async () => {
          for (const row of await device.db.listRows()) {
            if (
              (step.match.name === undefined || row.name === step.match.name) &&
              (step.match.serviceName === undefined || row.serviceName === step.match.serviceName)
            ) {
              await device.db.deleteRow(row.id);
            }
          }
        });
        break;
      }
      case 'set-dependent':
        device.dependent = [...step.images];
        break;
      case 'engine-fault':
        // times 0 means "from now on": a persistent fault, like a broken layer store (FB-13).
        if (step.error === 'register-layer' && step.times === 0) device.engine.breakLayerStore();
        else
          device.engine.injectFault(
            step.op,
            step.error,
            step.times === 0 ? Number.POSITIVE_INFINITY : step.times,
            step.ref,
          );
        break;
      case 'engine-remove-image':
        // An engine does not lose the image of an existing container; a history may ask for it anyway.
        if (device.engine.peek().containers.some((c) => c.imageId === step.imageId))
          log('  (kept: a container uses it)');
        else device.engine.dropImage(step.imageId);
        break;
    }
  }
  device.engine.betweenLayers = undefined;
  // Named cuts belong to the scenario's story; cuts by step number (sweeps, random histories) also
  // reach into the settling, so every step of the run is a place power can go out.
  power.disarmNamed();
  // The state engine keeps running after the last event: one more apply of the persisted target and
  // an idle tick are how the device settles (L1 is stated for the state once faults stop).
  log('> settle');
  // Errors of earlier steps (injected registry faults, say) are part of the story; the device must
  // still settle, so only a failure here counts against convergence.
  applyErrors.length = 0;
  device.engine.clearFaults();
  power.changed();
  for (let settled = false; !settled && power.cuts <= maxCuts;) {
    const cutsBefore = power.cuts;
    applyErrors.length = 0;
    await guarded('settle', async () => {
      await device.keeper.apply(null);
      await device.keeper.idleTick();
    });
    settled = power.cuts === cutsBefore;
  }
  // Steps up to here are where a cut can land; the checks below read the device without cuts.
  const cuttableSteps = power.calls;
  const distinctSteps = power.distinctSteps.filter((k) => k <= cuttableSteps);
  power.disarmAll();
  for (const armed of options.allowUnreachedCuts ? [] : armedByScenario) {
    if (!armed.fired())
      failures.push(
        `the power cut at ${describeScenarioStep(armed.step, sym)} never happened: the run did not reach it`,
      );
  }

  // ---- expectations ----
  const expect = scenario.expect;
  const engineState = device.engine.durableState();
  const dbState = device.db.peek();
  const present = new Set(engineState.images.map((i) => i.id));
  for (const id of expect.present)
    if (!present.has(id)) failures.push(sym(`expected image ${id} to be present`));
  for (const id of expect.absent)
    if (present.has(id)) failures.push(sym(`expected image ${id} to be absent`));
  if (expect.rows) {
    const actual = dbState.rows
      .map((r) => `${r.name} ${r.appId}/${r.serviceName}@${r.commit} -> ${r.dockerImageId ?? 'null'}`)
      .sort();
    const wanted = expect.rows
      .map((r) => `${r.name} ${r.appId}/${r.serviceName}@${r.commit} -> ${r.dockerImageId ?? 'null'}`)
      .sort();
    if (JSON.stringify(actual) !== JSON.stringify(wanted)) {
      failures.push(sym(`rows differ: expected [${wanted.join('; ')}], got [${actual.join('; ')}]`));
    }
  }
  const counters = device.engine.counters;
  const budgets = options.checkBudgets ?? true;
  if (
    budgets &&
    expect.bytesDownloadedAtMost !== undefined &&
    counters.bytesDownloaded > expect.bytesDownloadedAtMost
  ) {
    failures.push(
      `downloaded ${counters.bytesDownloaded} bytes, expected at most ${expect.bytesDownloadedAtMost}`,
    );
  }
  const disk = device.engine.diskBytes();
  if (budgets && expect.diskAtMost !== undefined && disk > expect.diskAtMost)
    failures.push(`disk ${disk} bytes, expected at most ${expect.diskAtMost}`);
  if (budgets && expect.peakDiskAtMost !== undefined && counters.peakDisk > expect.peakDiskAtMost) {
    failures.push(`peak disk ${counters.peakDisk} bytes, expected at most ${expect.peakDiskAtMost}`);
  }
  // With no known target nothing is removed, dangling images included (U1).
  if (expect.noDangling && dbState.target !== null) {
    const dangling = engineState.images.filter(isDangling);
    if (dangling.length > 0)
      failures.push(sym(`dangling images remain: ${dangling.map((i) => i.id).join(', ')}`));
  }
  if (expect.converged) {
    if (applyErrors.length > 0) failures.push(`expected convergence, but: ${applyErrors.join('; ')}`);
    const { steps } = await device.keeper.plan(dbState.target, false);
    if (steps.length > 0)
      failures.push(
        sym(`not at the fixed point; the planner would still: ${steps.map(describeStep).join('; ')}`),
      );
  }
  for (const c of expect.containers ?? []) {
    const match = engineState.containers.find(
      (x) =>
        x.service?.serviceName === c.serviceName &&
        x.imageId === c.imageId &&
        (c.running === undefined || x.running === c.running),
    );
    if (!match)
      failures.push(
        sym(
          `expected a container of ${c.serviceName} on ${c.imageId}${c.running === false ? ' (stopped)' : ''}`,
        ),
      );
  }
  for (const id of expect.neverRemoved) {
    if (counters.removalAttempts.includes(id)) failures.push(sym(`a removal of ${id} was attempted`));
  }
  failures.push(...monitor.violations.map(sym));
  if (expect.converged && applyErrors.length === 0) {
    failures.push(...checkFinalInvariants(scenario, device, monitor.snapshot()).map(sym));
  }

  const final = !tracing
    ? []
    : [
        `rows: ${dbState.rows.length === 0 ? '(none)' : ''}`,
        ...dbState.rows.map((r) =>
          sym(
            `  #${r.id} ${r.name} app ${r.appId} ${r.serviceName}@${r.commit} -> ${r.dockerImageId ?? 'null'}`,
          ),
        ),
        `engine images: ${engineState.images.length === 0 ? '(none)' : ''}`,
        ...engineState.images.map((i) =>
          sym(
            `  ${i.id} [${[...i.repoTags, ...i.repoDigests].join(', ') || 'dangling'}] ${i.layers.length} layers`,
          ),
        ),
        `containers: ${engineState.containers.length === 0 ? '(none)' : ''}`,
        ...engineState.containers.map((c) =>
          sym(
            `  ${c.id} on ${c.imageId} ${c.running ? 'running' : 'stopped'}${c.service ? ` (${c.service.serviceName}@${c.service.commit})` : ' (foreign)'}`,
          ),
        ),
        `downloaded ${counters.bytesDownloaded} bytes; disk ${disk} bytes (peak ${counters.peakDisk}); ${power.cuts} power cut(s); ${power.calls} steps; ${monitor.checks} invariant checks`,
        `B1: applies downloaded ${bandwidth.downloaded} bytes for ${bandwidth.missing} bytes of target layers missing at their start${bandwidth.missing > 0 ? ` (ratio ${(bandwidth.downloaded / bandwidth.missing).toFixed(3)})` : ''}`,
      ];
  // sql.js memory lives outside the JS heap: free it now (the result's device keeps the engine only).
  if (device.fs) await device.dispose();
  return {
    scenario,
    ok: failures.length === 0,
    failures: [...new Set(failures)],
    trace,
    final,
    bytesDownloaded: counters.bytesDownloaded,
    peakDisk: counters.peakDisk,
    cuts: power.cuts,
    portCalls: power.calls,
    cuttableSteps,
    distinctSteps,
    checks: monitor.checks,
    hits: power.hits,
    cutsAt: power.cutsAt,
    bandwidth,
    numberedCuts: power.numberedCuts,
    unfiredCutSteps: armedByScenario.filter((a) => !a.fired()).map((a) => a.index),
    device,
  };
}

function applyContainerStep(device: FakeDevice, step: Extract<ScenarioStep, { kind: 'container' }>): void {
  const matches = device.engine
    .durableState()
    .containers.filter(
      (c) =>
        (step.match.containerId === undefined || c.id === step.match.containerId) &&
        (step.match.serviceName === undefined || c.service?.serviceName === step.match.serviceName) &&
        (step.match.appId === undefined || c.service?.appId === step.match.appId),
    );
  for (const c of matches) {
    if (step.action === 'remove') device.engine.removeContainer(c.id);
    else if (step.action === 'stop' || step.action === 'start')
      device.engine.setContainerState(c.id, { running: step.action === 'start' });
    else device.engine.setContainerState(c.id, { locked: step.action === 'lock' });
  }
}

export function describeScenarioStep(step: ScenarioStep, sym: (s: string) => string): string {
  const where = step.line !== undefined ? ` (line ${step.line})` : '';
  switch (step.kind) {
    case 'apply':
      return (
        sym(
          `apply${step.intermediate ? ' intermediate' : ''} target: ${step.target.services.map((s) => `${s.serviceName}=${s.name}@${s.commit}`).join(', ') || '(no services)'}`,
        ) + where
      );
    case 'power-cut':
      return `arm power cut at ${step.at}${step.match ? ` matching ${sym(step.match)}` : ''} #${step.occurrence}${where}`;
    case 'engine-fault':
      return (
        sym(`engine fault: next ${step.times} ${step.op} ${step.error}${step.ref ? ` on ${step.ref}` : ''}`) +
        where
      );
    case 'container':
      return `container ${step.action} ${JSON.stringify(step.match)}${where}`;
    case 'idle-during-pull':
      return sym(`idle tick during pull of ${step.ref} after ${step.afterLayers} layer(s)`) + where;
    case 'engine-remove-image':
      return sym(`engine loses image ${step.imageId}`) + where;
    default:
      return `${step.kind}${where}`;
  }
}

function traceEvent(event: KeeperEvent, log: (line: string) => void): void {
  switch (event.type) {
    case 'startup-cleanup':
      if (event.repaired.length + event.deleted.length > 0) {
        log(
          `  startup cleanup: repaired [${event.repaired.join(', ')}] deleted [${event.deleted.join(', ')}]`,
        );
      }
      return;
    case 'pass':
      log(`  pass ${event.pass}: ${event.steps.length} step(s)`);
      return;
    case 'step':
      if (event.phase !== 'start')
        log(
          `    ${event.phase === 'done' ? 'ok  ' : 'FAIL'} ${event.step}${event.error ? `: ${event.error}` : ''}`,
        );
      return;
    case 'retry':
      log(`    retry ${event.what} (attempt ${event.attempt}, ${event.delayMs} ms): ${event.error}`);
      return;
    case 'idle-cleanup':
      log(
        `  idle cleanup: ${event.skipped ? `skipped (${event.skipped})` : `removed [${event.removed.join(', ')}]`}`,
      );
      return;
    case 'converged':
      log(`  converged after ${event.passes} pass(es)`);
      return;
    case 'progress':
      return;
  }
}
