/**
 * Runs a (rewritten, see scenario-on-engine.ts) scenario on the real adapters: an ImageKeeper over
 * DockerEngine and SqlJsStateDb (NodeFileSystem), step by step as sim/runner/run-scenario.ts does on
 * the fakes: boot (startup cleanup, apply of the persisted target), the steps, then settle (apply and
 * an idle tick). A power cut armed before an apply runs that apply in a real process with the crash
 * hook, which SIGKILLs itself at the named point; the device then restarts over the DB file and the
 * engine as they are (startup cleanup, the persisted target) and receives the target again.
 */
import { rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { LABEL_LOCKED, containerName, serviceLabels } from '../../../adapters/docker/container-labels.js';
import { DockerEngine } from '../../../adapters/docker/docker-engine.js';
import { NodeFileSystem } from '../../../adapters/node-fs/node-file-system.js';
import { SqlJsStateDb } from '../../../adapters/sqljs/sqljs-image-db.js';
import { isKeeperError } from '../../../core/errors.js';
import { ImageKeeper } from '../../../core/keeper.js';
import type { Container } from '../../../core/model/container.js';
import type { TargetImage, TargetService } from '../../../core/model/target.js';
import type { Clock } from '../../../core/ports/clock.js';
import type { CompiledScenario, ScenarioStep } from '../../../sim/scenario/compiled-scenario.js';
import type { ApplyProcess } from './apply-with-crash-hook.js';
import { finalStateOf, type FinalState } from './final-state.js';
import { ownTargetJson } from './own-target-json.js';
import { pullImage } from './pull-image.js';

export interface EngineRunOptions {
  readonly socketPath: string;
  /** A dockerode client of the same private engine, for what the scenario does behind the keeper. */
  readonly docker: Docker;
  /** Fresh directory for the DB and target files. */
  readonly workDir: string;
  /** Runs `apply` in a real process; without it, power-cut steps are refused. */
  readonly applyProcess?: ApplyProcess;
  readonly symbolize?: (text: string) => string;
  /** `docker load` archives of initial images without digest references, by image ID. */
  readonly archives?: ReadonlyMap<string, Buffer>;
  /** Runs once the initial images are on the engine (withdraws manifests the registry must not serve). */
  readonly afterPreload?: () => Promise<void>;
}

export interface EngineRunResult {
  readonly final: FinalState;
  /** What happened on the way (errors of steps, as the fake runner records them; cuts). */
  readonly notes: readonly string[];
  /** Errors of the final settle: the device did not converge. */
  readonly errors: readonly string[];
  /** Processes that died by SIGKILL at their crash point. */
  readonly cuts: number;
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
  let cuts = 0;

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

  const makeKeeper = (): ImageKeeper =>
    new ImageKeeper({
      db,
      targets: db,
      engine,
      containers: engine,
      clock: REAL_CLOCK,
      dependent: () => dependent,
      config: { deltas: false, systemApps: scenario.config.systemApps, retryBaseMs: 200 },
    });
  let keeper = makeKeeper();
  const guarded = async (what: string, action: () => Promise<unknown>, into = notes): Promise<void> => {
    try {
      await action();
    } catch (error) {
      const code = isKeeperError(error) ? error.code : 'ERROR';
      into.push(`${what} failed: ${code}: ${(error as Error).message}`);
    }
  };
  /** A fresh process over the durable state: the DB is read back from its file. */
  const reopen = async (): Promise<void> => {
    db = await SqlJsStateDb.open(fs, dbPath);
    keeper = makeKeeper();
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

  let armed: Extract<ScenarioStep, { kind: 'power-cut' }>[] = [];
  let targetFiles = 0;
  for (const step of scenario.steps) {
    switch (step.kind) {
      case 'apply': {
        if (armed.length === 0 || options.applyProcess === undefined) {
          await guarded('apply', () => keeper.apply(step.target, { intermediate: step.intermediate }));
          break;
        }
        const queue = armed;
        armed = [];
        const targetFile = join(options.workDir, `target-${++targetFiles}.json`);
        writeFileSync(targetFile, ownTargetJson(step.target));
        await db.close();
        // The first process gets the target; each later one is the restart after a cut (the persisted target).
        let killedLast = false;
        let resume = true;
        let fired = 0;
        for (const [index, cut] of queue.entries()) {
          const match = cut.match === undefined ? undefined : (containerIds.get(cut.match) ?? cut.match);
          const crashAt = `${cut.at}:${cut.occurrence}${match === undefined ? '' : `:${match}`}`;
          const run = await options.applyProcess({
            ...(index === 0 ? { targetFile } : {}),
            dbPath,
            socketPath: options.socketPath,
            crashAt,
          });
          killedLast = run.signal === 'SIGKILL';
          if (!killedLast) {
            const how = run.signal ? `died by ${run.signal}` : `exited ${String(run.code)}`;
            notes.push(
              `the cut at ${crashAt} was not reached: apply ${how}${run.code === 0 ? '' : `: ${run.stderr.trim()}`}`,
            );
            break;
          }
          cuts++;
          fired++;
          // In the scenario's own terms (a container ID of the scenario, not the engine's).
          notes.push(
            `apply SIGKILLed itself at ${cut.at}:${cut.occurrence}${cut.match === undefined ? '' : `:${cut.match}`}`,
          );
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
        await restart();
        break;
      case 'power-cut':
        if (options.applyProcess === undefined) throw new Error('power-cut steps need an applyProcess');
        armed.push(step);
        break;
      case 'idle':
        await guarded('idle', () => keeper.idleTick());
        break;
      case 'container':
        await containerStep(docker, engine, step, containerIds);
        break;
      case 'add-container':
        containerIds.set(step.container.id, await createContainer(docker, engine, step.container));
        break;
      case 'wipe-db':
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
