/**
 * Real power cuts. A device runs release c1 (four services on the catalogue images: main on app/main
 * v1, worker on app/worker v1, tools on app/base, twin on a twin manifest of app/base in another
 * repository, so one engine image carries two digest references) and is updated to c2: main moves to
 * v2, worker keeps its image, tools moves to app/big v1 (~30 MiB, through a paced loopback proxy so its
 * pull takes a while), twin is dropped. `image-keeper apply` runs as a real process with the crash hook
 * and SIGKILLs itself at one named crash point per round; a second `apply` without the hook must then
 * exit 0 with the device converged (one row per service, exactly the target's images, no dangling
 * image), and `docker events` must show no image deleted while a container used it or while the
 * target needed it. Then the private dockerd itself is SIGKILLed in the middle of the big pull, at more
 * than 0 bytes, restarted on the same data-root, and apply must converge again.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, test } from 'vitest';
import { DockerEngine } from '../../adapters/docker/docker-engine.js';
import { NodeFileSystem } from '../../adapters/node-fs/node-file-system.js';
import { SqlJsStateDb } from '../../adapters/sqljs/sqljs-image-db.js';
import { ImageKeeper } from '../../core/keeper.js';
import { isDangling } from '../../core/model/engine-image.js';
import type { Target, TargetService } from '../../core/model/target.js';
import type { Clock } from '../../core/ports/clock.js';
import { ByteCountingProxy } from './support/byte-counting-proxy.js';
import { applyWithCrashHook, type ApplyProcessResult } from './support/apply-with-crash-hook.js';
import { DeletionWatch } from './support/deletion-watch.js';
import { ownTargetJson } from './support/own-target-json.js';
import { PrivateEngine } from './support/private-engine.js';
import { PrivateRegistry } from './support/private-registry.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { publishTwin } from './support/registry-twin.js';
import { resetEngine } from './support/reset-engine.js';

const info = inject('engine');
const privateEngine = PrivateEngine.attach(info.engine);
const docker = privateEngine.client(60_000);
const { base, mainV1, mainV2, workerV1, bigV1 } = info.images;
const MiB = 1024 * 1024;
const dir = join(info.rootDir, 'power-cuts');
const dbPath = join(dir, 'state.db');
const targetBFile = join(dir, 'target-c2.json');
const REAL_CLOCK: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

let proxy: ByteCountingProxy;
let twinRegistry: PrivateRegistry;
let targetA: Target;
let targetB: Target;
/** The engine images of each release, by service. */
let imagesA: ReadonlySet<string>;
let imagesB: Readonly<Record<string, string>>;

const service = (serviceName: string, serviceId: number, name: string, commit: string): TargetService => ({
  name,
  appId: 1,
  serviceId,
  serviceName,
  imageId: serviceId * 10 + (commit === 'c1' ? 1 : 2),
  releaseId: commit === 'c1' ? 101 : 102,
  commit,
  strategy: 'download-then-kill',
});

const counts = { sigkills: 0, points: new Set<string>(), specs: 0, dockerdKills: 0, converged: 0 };

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  proxy = await ByteCountingProxy.start(info.registry.host);
  // The twin lives in a registry of its own: the shared one serves the catalogue only.
  twinRegistry = await PrivateRegistry.start({ dir: join(info.rootDir, 'r-power-cuts') });
  const twinPath = 'app/base-twin';
  const twinDigest = await publishTwin({
    fromUrl: info.registry.url,
    fromPath: base.path,
    digest: base.digest,
    toUrl: twinRegistry.url,
    toPath: twinPath,
  });
  const big = proxy.through(bigV1.digestRef);
  targetA = {
    services: [
      service('main', 1, mainV1.digestRef, 'c1'),
      service('worker', 2, workerV1.digestRef, 'c1'),
      service('tools', 3, base.digestRef, 'c1'),
      service('twin', 4, `${twinRegistry.host}/${twinPath}@${twinDigest}`, 'c1'),
    ],
    dependent: [],
  };
  targetB = {
    services: [
      service('main', 1, mainV2.digestRef, 'c2'),
      service('worker', 2, workerV1.digestRef, 'c2'),
      service('tools', 3, big, 'c2'),
    ],
    dependent: [],
  };
  imagesA = new Set([mainV1.imageId, workerV1.imageId, base.imageId]);
  imagesB = { main: mainV2.imageId, worker: workerV1.imageId, tools: bigV1.imageId };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(targetBFile, ownTargetJson(targetB));
  await resetEngine(docker);
});

afterAll(async () => {
  await privateEngine.ensureRunning();
  await resetEngine(docker);
  await proxy?.stop();
  await twinRegistry?.stop();
  console.log(
    `[power-cuts] ${counts.sigkills} SIGKILLs of image-keeper at ${counts.points.size} distinct points ` +
      `(${counts.specs} point/occurrence specs: ${[...counts.points].sort().join(', ')}); ` +
      `${counts.dockerdKills} dockerd kills mid-pull; ${counts.converged} recoveries converged`,
  );
});

/** Release c1, in-process (the DB file is the one the CLI uses): the state every round starts from. */
async function installReleaseA(): Promise<void> {
  proxy.pace = undefined;
  const db = await SqlJsStateDb.open(new NodeFileSystem(), dbPath);
  try {
    const engine = new DockerEngine({ socketPath: info.socketPath, stopTimeoutSeconds: 1 });
    const keeper = new ImageKeeper({
      db,
      targets: db,
      engine,
      containers: engine,
      clock: REAL_CLOCK,
      config: { retryBaseMs: 50 },
    });
    await keeper.startup();
    await keeper.apply(targetA);
    await keeper.idleTick();
  } finally {
    await db.close();
  }
  const ids = (await docker.listImages()).map((i) => i.Id);
  expect(new Set(ids)).toEqual(imagesA);
  // A pull paced at 64 MiB/s: the 30 MiB layer takes about half a second, long enough for several progress events.
  proxy.pace = 64 * MiB;
}

function expectKilledAt(run: ApplyProcessResult, point: string): void {
  expect(run.signal, `apply should die by SIGKILL at ${point}; exit ${String(run.code)}: ${run.stderr}`).toBe(
    'SIGKILL',
  );
  expect(run.stderr).toContain(`crash hook: SIGKILL at ${point}`);
  counts.sigkills++;
  counts.points.add(point);
}

/** One row per service of c2 on its image, exactly c2's images on the engine, nothing dangling, one container each. */
async function expectConvergedOnB(): Promise<void> {
  const db = await SqlJsStateDb.open(new NodeFileSystem(), dbPath);
  let rows;
  try {
    rows = await db.listRows();
  } finally {
    await db.close();
  }
  const expectedRows = targetB.services
    .map((s) => `${s.name} ${s.serviceName}@${s.commit} -> ${imagesB[s.serviceName]}`)
    .sort();
  expect(rows.map((r) => `${r.name} ${r.serviceName}@${r.commit} -> ${r.dockerImageId}`).sort()).toEqual(
    expectedRows,
  );
  const engine = new DockerEngine({ socketPath: info.socketPath });
  const images = await engine.listImages();
  expect(images.filter(isDangling)).toEqual([]);
  expect(images.map((i) => i.id).sort()).toEqual([...new Set(Object.values(imagesB))].sort());
  const containers = await engine.listContainers();
  expect(
    containers
      .map((c) => `${c.service?.serviceName ?? 'foreign'}@${c.service?.commit ?? ''} on ${c.imageId}`)
      .sort(),
  ).toEqual(targetB.services.map((s) => `${s.serviceName}@c2 on ${imagesB[s.serviceName]}`).sort());
  counts.converged++;
}

interface Round {
  readonly name: string;
  /** IMAGE_KEEPER_CRASH_AT of the apply that gets the c2 target. */
  readonly crashAt: () => string;
  /** A second cut, in the restart that follows (apply of the persisted target). */
  readonly thenAt?: () => string;
  /** The cut must come with bytes of this image's pull already received. */
  readonly midBytesOf?: () => string;
  /** Pace of app/big's blobs for this round (default 64 MiB/s). */
  readonly pace?: number;
}

const ROUNDS: readonly Round[] = [
  { name: 'after the row of a present image is saved', crashAt: () => 'after-save:1' },
  {
    name: 'after the first row is stored (step 1), then again in the startup cleanup of the restart',
    crashAt: () => 'after-row-stored:1',
    thenAt: () => 'mid-startup-cleanup:1',
  },
  {
    name: 'mid-pull of app/main v2 (two of three layers present)',
    crashAt: () => `mid-pull:1:${mainV2.digest}`,
  },
  {
    name: 'mid-pull of app/big v1, its 30 MiB layer under way',
    crashAt: () => `mid-pull:5:${bigV1.digest}`,
    midBytesOf: () => bigV1.digest,
    pace: 16 * MiB,
  },
  {
    name: 'after app/big v1 is complete, before its ID is written (step 2)',
    crashAt: () => `after-image-complete:1:${bigV1.digest}`,
  },
  { name: 'after the first image ID is written (step 3)', crashAt: () => 'after-id-written:1' },
  { name: 'after the first old container is killed', crashAt: () => 'after-kill:1' },
  { name: 'after the second new container is started', crashAt: () => 'after-start:2' },
  {
    name: 'between the untag of a shared image and its row delete',
    crashAt: () => 'between-untag-and-delete:1',
  },
  {
    name: 'between the engine delete of an image and its row delete',
    crashAt: () => 'between-engine-delete-and-row-delete:1',
  },
  { name: 'after the second row delete', crashAt: () => 'after-row-delete:2' },
];

describe('image-keeper SIGKILLed at a crash point, then apply again', () => {
  beforeEach(async () => {
    await installReleaseA();
  });

  for (const round of ROUNDS) {
    test(round.name, async () => {
      if (round.pace !== undefined) proxy.pace = round.pace;
      const watch = await DeletionWatch.start(docker, new Set(Object.values(imagesB)));
      const crashAt = round.crashAt();
      const point = crashAt.split(':')[0]!;
      const crashed = await applyWithCrashHook({
        targetFile: targetBFile,
        dbPath,
        socketPath: info.socketPath,
        crashAt,
      });
      expectKilledAt(crashed, point);
      counts.specs++;
      if (round.midBytesOf) {
        // Progress lines go out (synchronously, to a pipe) before the crash point is reached.
        const digest = round.midBytesOf();
        const last = crashed.events
          .filter((e) => e['type'] === 'progress' && String(e['ref']).includes(digest))
          .at(-1);
        expect(Number(last?.['bytesDone'])).toBeGreaterThan(0);
        expect(Number(last?.['bytesDone'])).toBeLessThan(Number(last?.['bytesTotal']));
      }
      if (round.thenAt) {
        const thenAt = round.thenAt();
        // The restart after the cut: apply of the persisted target, cut again inside its startup cleanup.
        const again = await applyWithCrashHook({ dbPath, socketPath: info.socketPath, crashAt: thenAt });
        expectKilledAt(again, thenAt.split(':')[0]!);
        counts.specs++;
      }
      const recovered = await applyWithCrashHook({
        targetFile: targetBFile,
        dbPath,
        socketPath: info.socketPath,
      });
      expect(recovered.code, recovered.stderr).toBe(0);
      const report = await watch.stop(150);
      expect(report.violations).toEqual([]);
      // The old release's images went, and only once nothing used them.
      expect(report.deleted).toEqual(expect.arrayContaining([mainV1.imageId, base.imageId]));
      await expectConvergedOnB();
    });
  }
});

describe('the private dockerd SIGKILLed in the middle of a pull', () => {
  beforeEach(async () => {
    await installReleaseA();
  });

  for (const attempt of [1, 2, 3]) {
    test(`kill ${attempt}: dockerd dies with app/big v1 part-way, restarts on the same data-root, apply converges`, async () => {
      const before = new Set((await docker.listImages()).map((i) => i.Id));
      // Slow enough that the pull is surely under way when its first byte progress line arrives.
      proxy.pace = 8 * MiB;
      let killed: Promise<number> | undefined;
      let bytesAtKill = 0;
      const interrupted = await applyWithCrashHook({
        targetFile: targetBFile,
        dbPath,
        socketPath: info.socketPath,
        onEvent: (event) => {
          if (killed !== undefined || event['type'] !== 'progress') return;
          const bytes = Number(event['bytesDone']);
          if (!String(event['ref']).includes(bigV1.digest) || !(bytes > 0)) return;
          bytesAtKill = bytes;
          killed = privateEngine.kill9();
        },
      });
      expect(
        killed,
        `no progress line with bytes for app/big: ${interrupted.stdout.slice(-500)}`,
      ).toBeDefined();
      await killed;
      counts.dockerdKills++;
      expect(bytesAtKill).toBeGreaterThan(0);
      expect(bytesAtKill).toBeLessThan(30 * MiB);
      // The engine was gone: apply fails with a transient engine error (exit 3) and keeps its state.
      expect(interrupted.code, interrupted.stderr).toBe(3);
      proxy.pace = undefined;
      await privateEngine.restart();
      const after = new Set((await docker.listImages()).map((i) => i.Id));
      for (const id of before) expect(after.has(id), `image ${id} lost with dockerd`).toBe(true);
      expect(after.has(bigV1.imageId)).toBe(false);
      const recovered = await applyWithCrashHook({
        targetFile: targetBFile,
        dbPath,
        socketPath: info.socketPath,
      });
      expect(recovered.code, recovered.stderr).toBe(0);
      await expectConvergedOnB();
    });
  }
});
