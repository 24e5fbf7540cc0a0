/**
 * Runs a (rewritten, see scenario-on-engine.ts) scenario on the real adapters: an ImageKeeper over
 * DockerEngine and SqlJsStateDb (NodeFileSystem), step by step as sim/runner/run-scenario.ts does on
 * the fakes: boot (startup cleanup, apply of the persisted target), the steps, then settle (apply and
 * an idle tick).
 *
 * Power cuts come in two kinds. A run of equal cuts armed before a full apply runs that apply in a real
 * process with the crash hook, which SIGKILLs itself at the named point (the stronger test: nothing of
 * the process survives); the device then restarts over the DB file and the engine as they are (startup
 * cleanup, the persisted target) and receives the target again. Every other cut (before an intermediate
 * apply, a restart, a wipe-db or an idle step, two different cuts at once, a scenario with a dependent
 * state or system apps, which the apply command has not) is in-process (in-process-power.ts): the
 * keeper's CrashPoints port throws a power cut at the armed point, the runner abandons that keeper and
 * its SqlJsStateDb without flushing anything, opens the DB file again and restarts exactly as the fake
 * runner does (startup cleanup, then the persisted target unless the cut says resume: false; a full
 * apply that was cut is sent again).
 *
 * An idle tick in the middle of a pull (idle-during-pull) starts from the keeper's progress events once
 * the pull has brought N layers the engine lacked (dockerd also counts the layers it already had, the
 * fake engine does not); the keeper sees that pull complete only after the tick: the fake engine runs
 * the tick between two layers and awaits it, while dockerd keeps downloading meanwhile.
 */
import { rm } from 'node:fs/promises';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { LABEL_LOCKED, containerName, serviceLabels } from '../../../adapters/docker/container-labels.js';
import { DockerEngine } from '../../../adapters/docker/docker-engine.js';
import { NodeFileSystem } from '../../../adapters/node-fs/node-file-system.js';
import { SqlJsStateDb } from '../../../adapters/sqljs/sqljs-image-db.js';
import { isKeeperError, isPowerCut } from '../../../core/errors.js';
import { ImageKeeper } from '../../../core/keeper.js';
import { FakeRegistry } from '../../../adapters/fake-engine/fake-registry.js';
import type { Container } from '../../../core/model/container.js';
import type { EngineImage } from '../../../core/model/engine-image.js';
import type { TargetImage, TargetService } from '../../../core/model/target.js';
import type { Clock } from '../../../core/ports/clock.js';
import type { ProgressListener } from '../../../core/ports/engine.js';
import type { EventSink } from '../../../core/ports/event-sink.js';
import { digestOf } from '../../../core/reference/image-reference.js';
import type { CompiledScenario, ScenarioStep } from '../../../sim/scenario/compiled-scenario.js';
import type { ApplyProcess } from './apply-with-crash-hook.js';
import { finalStateOf, type FinalState } from './final-state.js';
import { InProcessPower, powered } from './in-process-power.js';
import { ownTargetJson } from './own-target-json.js';
import { pullImage } from './pull-image.js';

export interface EngineRunOptions {
  readonly socketPath: string;
  /** A dockerode client of the same private engine, for what the scenario does behind the keeper. */
  readonly docker: Docker;
  /** Fresh directory for the DB and target files. */
  readonly workDir: string;
  /** Runs `apply` in a real process (SIGKILL cuts); without it, every power cut is in-process. */
  readonly applyProcess?: ApplyProcess;
  readonly symbolize?: (text: string) => string;
  /** `docker load` archives of initial images without digest references, by image ID. */
  readonly archives?: ReadonlyMap<string, Buffer>;
  /** Runs once the initial images are on the engine (withdraws manifests the registry must not serve). */
  readonly afterPreload?: () => Promise<void>;
  /** Real layer digest to the engine's diff ID (ScenarioMapping.diffIds): which layers a pull lacks. */
  readonly diffIds?: ReadonlyMap<string, string>;
}

/** A power cut that fired: a real apply process that SIGKILLed itself, or an in-process cut (and why). */
export interface FiredCut {
  readonly kind: 'SIGKILL' | 'in-process';
  /** `<point>:<occurrence>[:<match>]` in the scenario's terms. */
  readonly label: string;
  readonly why?: string;
}

export interface EngineRunResult {
  readonly final: FinalState;
  /** What happened on the way (errors of steps, as the fake runner records them; idle ticks in a pull). */
  readonly notes: readonly string[];
  /**
   * Errors of the final settle (the device did not converge), a cut or idle tick that never happened,
   * a core that swallowed a cut, a DB file written after a cut.
   */
  readonly errors: readonly string[];
  /** Every power cut that fired, in order. */
  readonly cuts: readonly FiredCut[];
}

const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export async function runScenarioOnEngine(
  scenario: CompiledScenario,
  options: EngineRunOptions,
): Promise<EngineRunResult> {
  const { docker } = options;
  const fs = new NodeFileSystem();
  const dbPath = join(options.workDir, 'state.db');
  const engine = new DockerEngine({
    socketPath: options.socketPath,
    timeoutMs: 60_000,
    stopTimeoutSeconds: 1,
  });
  const notes: string[] = [];
  const errors: string[] = [];
  const containerIds = new Map<string, string>();
  let dependent: TargetImage[] = [...scenario.initial.dependent];
  const cuts: FiredCut[] = [];

  // ---- initial state ----
  await preloadImages(docker, scenario, options.archives ?? new Map());
  await options.afterPreload?.();
  let db = await SqlJsStateDb.open(fs, dbPath);
  for (const row of scenario.initial.rows) {
    const { id: _id, ...fields } = row;
    await db.insertRow(fields);
  }
  if (scenario.initial.target) await db.writeTarget(scenario.initial.target);
  for (const container of scenario.initial.containers) {
    containerIds.set(container.id, await createContainer(docker, engine, container));
  }

  // ---- in-process power and the idle tick in the middle of a pull ----
  const power = new InProcessPower();
  let duringPull: { ref: string; afterLayers: number; done: boolean } | undefined;
  /** Idle ticks started in the middle of a pull, by reference: the keeper's pull completes after them. */
  const ticks = new Map<string, { readonly tick: Promise<string[]>; readonly pulled: number }>();
  /** What the idle tick in flight did, from its own event (none: it found nothing to do). */
  let tickOutcome: string | undefined;
  /** Layers of the image the engine held when its pull began (dockerd counts them as done). */
  const heldAtPullStart = new Map<string, number>();
  const registry = new FakeRegistry(scenario.registry);
  const layersHeld = async (ref: string): Promise<number> => {
    let chain: (string | undefined)[];
    try {
      chain = registry.resolve(ref).layers.map((l) => options.diffIds?.get(l.digest));
    } catch {
      return 0;
    }
    // dockerd says "Already exists" for a layer whose chain (every layer below it too) it holds.
    let held = 0;
    for (const image of await engine.listImages()) {
      let n = 0;
      while (n < chain.length && chain[n] !== undefined && image.layers[n]?.digest === chain[n]) n++;
      held = Math.max(held, n);
    }
    return held;
  };
  const pull = async (ref: string, onProgress: ProgressListener): Promise<EngineImage> => {
    if (duringPull && !duringPull.done && ref.includes(duringPull.ref))
      heldAtPullStart.set(ref, await layersHeld(ref));
    const outcome = await engine.pull(ref, onProgress).then(
      (image) => ({ image }),
      (error: unknown) => ({ error }),
    );
    const started = ticks.get(ref);
    ticks.delete(ref);
    if (started !== undefined) {
      // As on the fakes, an error of the tick (a cut in it) is the pull's error.
      await started.tick.catch((error: unknown) => {
        throw 'error' in outcome && isPowerCut(outcome.error) ? outcome.error : error;
      });
      notes.push(
        `idle tick while ${digestOf(ref) ?? ref} was in flight (${started.pulled} new layer(s) pulled, ` +
          `${heldAtPullStart.get(ref) ?? 0} held before): ${tickOutcome ?? 'nothing to do'}`,
      );
      tickOutcome = undefined;
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.image;
  };
  const events: EventSink = {
    emit: (event) => {
      if (event.type === 'idle-cleanup' && ticks.size > 0) {
        tickOutcome = event.skipped ? `skipped (${event.skipped})` : `removed [${event.removed.join(', ')}]`;
        return;
      }
      const hook = duringPull;
      if (event.type !== 'progress' || hook === undefined || hook.done || !event.ref.includes(hook.ref))
        return;
      // Like the fake engine, which calls back after each layer it downloads (never before the first).
      const pulled = event.layersDone - (heldAtPullStart.get(event.ref) ?? 0);
      if (pulled < Math.max(1, hook.afterLayers)) return;
      hook.done = true;
      const tick = keeper.idleTick();
      tick.catch(() => undefined); // awaited by the pull; never an unhandled rejection meanwhile
      ticks.set(event.ref, { tick, pulled });
    },
  };
  const device = powered(engine, power, { pull });

  const makeKeeper = (): ImageKeeper =>
    new ImageKeeper({
      db: powered(db, power),
      targets: powered(db, power),
      engine: device,
      containers: device,
      clock: REAL_CLOCK,
      events,
      crashPoints: power,
      dependent: () => dependent,
      config: { deltas: false, systemApps: scenario.config.systemApps, retryBaseMs: 200 },
    });
  let keeper = makeKeeper();
  /** A fresh process over the durable state: the DB is read back from its file. */
  const reopen = async (): Promise<void> => {
    db = await SqlJsStateDb.open(fs, dbPath);
    keeper = makeKeeper();
  };
  /**
   * The device boots after an in-process cut: the keeper is dropped and its DB instance abandoned, not
   * closed (SqlJsStateDb persists every commit, fsynced and renamed, before the call returns, and keeps
   * no write for later; abandon() only frees sql.js memory and refuses further calls). The file must be
   * byte for byte what it was at the cut.
   */
  const bootAfterCut = async (): Promise<void> => {
    const cut = power.fired.at(-1)!;
    cuts.push({ kind: 'in-process', label: cut.label, why: cut.why });
    const atCut = fileBytes(dbPath);
    await db.abandon();
    if (!sameBytes(atCut, fileBytes(dbPath)))
      errors.push('the DB file changed after the power cut (the abandoned instance wrote to it)');
    power.restore();
    await reopen();
  };
  /** Whether the last recovery resumed the interrupted target (see InProcessCut.resume). */
  let recoveryResumed = true;
  /** As the fake runner's recover: startup cleanup, then the persisted target; cuts may hit again. */
  const recover = async (): Promise<void> => {
    let resume = power.lastCutResumes;
    for (;;) {
      if (power.fired.length > MAX_CUTS) {
        errors.push(`more than ${MAX_CUTS} power cuts: gave up`);
        return;
      }
      await bootAfterCut();
      resume = resume && power.lastCutResumes;
      recoveryResumed = resume;
      try {
        await keeper.startup();
        if (resume) await keeper.apply(null);
        if (swallowed('recovery')) continue;
        return;
      } catch (error) {
        if (!isPowerCut(error)) return record('recovery', error, notes);
      }
    }
  };
  const record = (what: string, error: unknown, into: string[]): void => {
    const code = isKeeperError(error) ? error.code : 'ERROR';
    into.push(`${what} failed: ${code}: ${(error as Error).message}`);
  };
  /** A cut the core caught and carried on from: its next step threw again, yet it returned normally. */
  const swallowed = (what: string): boolean => {
    if (!power.off) return false;
    errors.push(`${what} returned normally after a power cut: the core swallowed the cut`);
    return true;
  };
  const guarded = async (what: string, action: () => Promise<unknown>, into = notes): Promise<void> => {
    try {
      await action();
      if (swallowed(what)) await recover();
    } catch (error) {
      if (!isPowerCut(error)) return record(what, error, into);
      await recover();
    }
  };
  const restart = async (): Promise<void> => {
    await db.close();
    await reopen();
    await guarded('restart', async () => {
      await keeper.startup();
      await keeper.apply(null);
    });
  };

  await guarded('boot', async () => {
    await keeper.startup();
    await keeper.apply(null);
  });

  /** Power-cut steps not armed yet: a run of equal ones before a full apply becomes a SIGKILLed process. */
  let queued: PowerCutStep[] = [];
  /** The cut's match on this engine: a scenario container's ID becomes the engine's. */
  const engineMatch = (match: string | undefined): string | undefined =>
    match === undefined ? undefined : (containerIds.get(match) ?? match);
  const armInProcess = (why: string): void => {
    for (const cut of queued) {
      power.arm({
        at: cut.at,
        match: engineMatch(cut.match),
        occurrence: cut.occurrence,
        resume: cut.resume,
        label: cutLabel(cut),
        why,
      });
    }
    queued = [];
  };
  /** Why the queued cuts cannot run as a SIGKILLed `apply` of this step (undefined when they can). */
  const processCannot = (step: Extract<ScenarioStep, { kind: 'apply' }>): string | undefined => {
    if (options.applyProcess === undefined) return 'no apply process given';
    if (step.intermediate) return 'before an intermediate apply: the apply command applies full targets only';
    if (queued.some((cut) => !sameCut(cut, queued[0]!)))
      return 'armed with a different cut: the crash hook arms one cut per process';
    if (power.pending) return 'armed while an in-process cut is pending';
    if (duringPull !== undefined && !duringPull.done)
      return 'with an idle tick armed for the middle of a pull: the apply command runs none';
    if (dependent.length > 0) return 'with a dependent state: the apply command has none';
    if (scenario.config.systemApps.length > 0) return 'with system apps: the apply command has none';
    return undefined;
  };

  let targetFiles = 0;
  for (const step of scenario.steps) {
    switch (step.kind) {
      case 'apply': {
        const why = queued.length === 0 ? undefined : processCannot(step);
        if (queued.length === 0 || why !== undefined) {
          if (why !== undefined) armInProcess(why);
          // The cloud keeps sending the target: an apply cut short is applied again after the restart.
          // An intermediate target is not: the persisted target is the authority after a cut.
          for (let attempt = 0; ; attempt++) {
            const before = power.fired.length;
            await guarded('apply', () => keeper.apply(step.target, { intermediate: step.intermediate }));
            if (power.fired.length === before || step.intermediate || !recoveryResumed || attempt >= MAX_CUTS)
              break;
          }
          break;
        }
        const queue = queued;
        queued = [];
        const targetFile = join(options.workDir, `target-${++targetFiles}.json`);
        writeFileSync(targetFile, ownTargetJson(step.target));
        await db.close();
        // The first process gets the target; each later one is the restart after a cut (the persisted target).
        let killedLast = false;
        let resume = true;
        let fired = 0;
        for (const [index, cut] of queue.entries()) {
          const match = engineMatch(cut.match);
          const crashAt = `${cut.at}:${cut.occurrence}${match === undefined ? '' : `:${match}`}`;
          const run = await options.applyProcess!({
            ...(index === 0 ? { targetFile } : {}),
            dbPath,
            socketPath: options.socketPath,
            crashAt,
          });
          killedLast = run.signal === 'SIGKILL';
          if (!killedLast) {
            const how = run.signal ? `died by ${run.signal}` : `exited ${String(run.code)}`;
            notes.push(
              `the cut at ${cutLabel(cut)} was not reached: apply ${how}${run.code === 0 ? '' : `: ${run.stderr.trim()}`}`,
            );
            break;
          }
          fired++;
          cuts.push({ kind: 'SIGKILL', label: cutLabel(cut) });
          resume = cut.resume ?? true;
          if (!resume) break;
        }
        await reopen();
        if (killedLast) {
          await guarded('recovery', async () => {
            await keeper.startup();
            if (resume) await keeper.apply(null);
          });
        }
        // The cloud keeps sending the target: after a restart it arrives again.
        if (fired > 0 && resume) await guarded('apply', () => keeper.apply(step.target));
        break;
      }
      case 'restart':
        armInProcess('before a restart');
        await restart();
        break;
      case 'power-cut':
        queued.push(step);
        break;
      case 'idle':
        armInProcess('before an idle tick');
        await guarded('idle', () => keeper.idleTick());
        break;
      case 'idle-during-pull':
        duringPull = { ref: step.ref, afterLayers: step.afterLayers, done: false };
        break;
      case 'container':
        await containerStep(docker, engine, step, containerIds);
        break;
      case 'add-container':
        containerIds.set(step.container.id, await createContainer(docker, engine, step.container));
        break;
      case 'wipe-db':
        armInProcess('before the wipe-db step');
        await db.close();
        await rm(dbPath, { force: true });
        await reopen();
        await guarded('restart', async () => {
          await keeper.startup();
          await keeper.apply(null);
        });
        break;
      case 'delete-rows':
        for (const row of await db.listRows()) {
          if (
            (step.match.name === undefined || row.name === step.match.name) &&
            (step.match.serviceName === undefined || row.serviceName === step.match.serviceName)
          ) {
            await db.deleteRow(row.id);
          }
        }
        break;
      case 'set-dependent':
        dependent = [...step.images];
        break;
      default:
        throw new Error(`step ${step.kind} cannot run on a real engine`);
    }
  }
  // As on the fakes: the scenario's cuts belong to its story, not to the settling; one that never
  // fired means the engine run did not tell the same story.
  for (const cut of [...queued.map(cutLabel), ...power.disarm().map((c) => c.label)])
    errors.push(`the power cut at ${cut} never happened: the run did not reach it`);
  if (duringPull !== undefined && !duringPull.done)
    errors.push(`the idle tick during the pull of ${duringPull.ref} never ran: no such pull brought a layer`);
  duringPull = undefined;

  await guarded(
    'settle',
    async () => {
      await keeper.apply(null);
      await keeper.idleTick();
    },
    errors,
  );
  const final = finalStateOf(
    await engine.listImages(),
    await db.listRows(),
    await engine.listContainers(),
    options.symbolize,
  );
  await db.close();
  return { final, notes, errors, cuts };
}

type PowerCutStep = Extract<ScenarioStep, { kind: 'power-cut' }>;

/** Power cuts one run survives before it gives up (as the fake runner's default maxCuts). */
const MAX_CUTS = 10;

/** `<point>:<occurrence>[:<match>]` in the scenario's own terms (a scenario container ID, a digest). */
function cutLabel(cut: PowerCutStep): string {
  return `${cut.at}:${cut.occurrence}${cut.match === undefined ? '' : `:${cut.match}`}`;
}

function sameCut(a: PowerCutStep, b: PowerCutStep): boolean {
  return (
    a.at === b.at &&
    a.match === b.match &&
    a.occurrence === b.occurrence &&
    (a.resume ?? true) === (b.resume ?? true)
  );
}

function fileBytes(path: string): Buffer | null {
  return existsSync(path) ? readFileSync(path) : null;
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

/**
 * Pulls every initial image by each of its digest references, or loads it from its archive when it
 * has none (a side-loaded or built image), then adds its tags locally.
 */
async function preloadImages(
  docker: Docker,
  scenario: CompiledScenario,
  archives: ReadonlyMap<string, Buffer>,
): Promise<void> {
  for (const image of scenario.initial.images) {
    for (const ref of image.repoDigests) {
      const pulled = await pullImage(docker, ref);
      if (pulled.imageId !== image.id)
        throw new Error(`preload: ${ref} is ${pulled.imageId}, expected ${image.id}`);
    }
    if (image.repoDigests.length === 0) {
      const archive = archives.get(image.id);
      if (archive === undefined) throw new Error(`preload: no archive for ${image.id}`);
      const stream = await docker.loadImage(Readable.from([archive]));
      let output = '';
      for await (const chunk of stream as AsyncIterable<Buffer>) output += chunk.toString();
      if (/"error/.test(output)) throw new Error(`preload: docker load of ${image.id} failed: ${output}`);
      await docker.getImage(image.id).inspect();
    }
    for (const tagged of image.repoTags) {
      const colon = tagged.lastIndexOf(':');
      await docker.getImage(image.id).tag({ repo: tagged.slice(0, colon), tag: tagged.slice(colon + 1) });
    }
  }
}

/**
 * A scenario container on the real engine: service containers through the real ContainerControl
 * (labelled, network none), locked ones with the lock label added, foreign ones plain and unlabelled.
 */
async function createContainer(docker: Docker, engine: DockerEngine, container: Container): Promise<string> {
  let id: string;
  const service = container.service;
  if (service && !service.locked) {
    id = (await engine.start(asTargetService(service), container.imageId)).id;
  } else {
    const created = await docker.createContainer({
      name: service
        ? containerName(asTargetService(service))
        : `foreign_${container.id.replace(/[^a-zA-Z0-9_.-]/g, '-')}`,
      Image: container.imageId,
      ...(service ? { Labels: { ...serviceLabels(asTargetService(service)), [LABEL_LOCKED]: 'true' } } : {}),
      HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 } },
    });
    id = created.id;
    await created.start();
  }
  if (!container.running) await docker.getContainer(id).stop({ t: 0 });
  return id;
}

function asTargetService(service: NonNullable<Container['service']>): TargetService {
  return { ...service, name: '', imageId: 0, releaseId: 0, strategy: 'download-then-kill' };
}

async function containerStep(
  docker: Docker,
  engine: DockerEngine,
  step: Extract<ScenarioStep, { kind: 'container' }>,
  containerIds: ReadonlyMap<string, string>,
): Promise<void> {
  const wantedId =
    step.match.containerId === undefined
      ? undefined
      : (containerIds.get(step.match.containerId) ?? step.match.containerId);
  const matches = (await engine.listContainers()).filter(
    (c) =>
      (wantedId === undefined || c.id === wantedId) &&
      (step.match.serviceName === undefined || c.service?.serviceName === step.match.serviceName) &&
      (step.match.appId === undefined || c.service?.appId === step.match.appId),
  );
  const tolerate = (codes: number[]) => (error: { statusCode?: number }) => {
    if (!codes.includes(error.statusCode ?? 0)) throw error;
  };
  for (const c of matches) {
    const handle = docker.getContainer(c.id);
    if (step.action === 'stop') await handle.stop({ t: 0 }).catch(tolerate([304]));
    else if (step.action === 'start') await handle.start().catch(tolerate([304]));
    else if (step.action === 'remove') await handle.remove({ force: true }).catch(tolerate([404]));
    else throw new Error(`container ${step.action} cannot run on a real engine`);
  }
}
