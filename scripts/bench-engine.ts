/**
 * `npm run bench:engine`: image-keeper on a real engine, against baselines measured in the same run, one
 * JSON object per figure (like scripts/bench.ts). Starts its own PRIVATE dockerd and registry (own
 * data-root and socket, registry on 127.0.0.1; never /var/run/docker.sock, nothing from any hub) and
 * stops them at the end, also on failure or Ctrl-C.
 *  - pull: a ~100 MiB, 5-layer image of incompressible seed-derived bytes, pulled through image-keeper
 *    (ImageKeeper.apply of a target holding it, DockerEngine + SqlJsStateDb on a real file) against a
 *    plain `docker pull` of the same image, alternating, the image removed in between; medians and the
 *    ratio (aim at most 1.05). The image is a dependent-app image, so apply pulls it and starts nothing.
 *    An engine API pull (dockerode, no CLI process) is timed too: the ratio against it is what the
 *    protocol itself (rows, durable commits, planning passes) costs.
 *  - bytes: v1 installed, then an update to v2 (the same first four layers, a new top layer), with both
 *    referenced through a byte-counting proxy on loopback: bytes the registry served against the
 *    compressed sizes of the layers v2 has and v1 lacks, from the registry's manifests (aim 1.00).
 *  - db: SqlJsStateDb commit time (one row insert made durable: export, write, fsync, rename, fsync of
 *    the directory) on a NodeFileSystem in a temp dir holding 10, 1,000 and 10,000 rows; medians.
 * `npm run bench:engine -- db` runs only the named parts (pull, bytes, db).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerEngine } from '../adapters/docker/docker-engine.js';
import { NodeFileSystem } from '../adapters/node-fs/node-file-system.js';
import { SqlJsStateDb } from '../adapters/sqljs/sqljs-image-db.js';
import { loadSqlJs } from '../adapters/sqljs/sqljs-loader.js';
import { ImageKeeper } from '../core/keeper.js';
import type { Target, TargetImage, TargetService } from '../core/model/target.js';
import type { Clock } from '../core/ports/clock.js';
import { ByteCountingProxy } from '../test/engine/support/byte-counting-proxy.js';
import { runDockerCli } from '../test/engine/support/docker-cli.js';
import { pushHandBuiltImage, type PushedImage } from '../test/engine/support/hand-built-images.js';
import { pullImage } from '../test/engine/support/pull-image.js';
import { createPrivateDir, removePrivateDir } from '../test/engine/support/private-dir.js';
import { PrivateEngine } from '../test/engine/support/private-engine.js';
import { PrivateRegistry } from '../test/engine/support/private-registry.js';
import { assertPrivateEngineAnswers } from '../test/engine/support/private-socket.js';
import { resetEngine } from '../test/engine/support/reset-engine.js';
import { claimPrivateDir } from '../test/engine/support/stale-runs.js';
import { forgetOtherEngines } from '../test/engine/support/docker-env.js';

// Before anything else: no DOCKER_HOST, context or TLS setting may point a client at another engine.
const droppedEnv = forgetOtherEngines();

const only = process.argv.slice(2);
const want = (name: string): boolean => only.length === 0 || only.includes(name);
const emit = (figure: Record<string, unknown>): void => console.log(JSON.stringify(figure));
const log = (line: string): void => console.error(`[bench-engine] ${line}`);
const MiB = 1024 * 1024;
const REPS = Number(process.env['BENCH_ENGINE_REPS'] ?? 5);
/** Layer sizes of the ~100 MiB image, bottom first: four shared by v1 and v2, then each one's top. */
const SHARED_LAYERS = [36 * MiB, 28 * MiB, 20 * MiB, 12 * MiB];
const TOP_LAYER = 4 * MiB;

const REAL_CLOCK: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

function baselineMs(): number {
  const data = Buffer.alloc(1 << 20, 7);
  const started = performance.now();
  for (let i = 0; i < 50; i++) createHash('sha256').update(data).digest();
  return performance.now() - started;
}

interface Rig {
  readonly root: string;
  readonly engine: PrivateEngine;
  readonly registry: PrivateRegistry;
}

async function main(): Promise<void> {
  if (droppedEnv.length > 0) log(`ignoring ${droppedEnv.join(', ')}: only the private engine is used`);
  const base = median([baselineMs(), baselineMs(), baselineMs()]);
  emit({ bench: 'baseline', what: 'sha256 of 50 MiB', baselineMs: round(base, 2) });
  const root = createPrivateDir();
  claimPrivateDir(root);
  let engine: PrivateEngine | undefined;
  let registry: PrivateRegistry | undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      const results = await Promise.allSettled([engine?.stop(), registry?.stop()]);
      removePrivateDir(root);
      for (const r of results) if (r.status === 'rejected') log(`stop failed: ${String(r.reason)}`);
      log(`stopped the private engine and registry, removed ${root}`);
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (want('pull') || want('bytes')) {
      const [e, r] = await Promise.allSettled([
        PrivateEngine.start({ dir: join(root, 'e'), log }),
        PrivateRegistry.start({ dir: join(root, 'r'), log }),
      ]);
      if (e.status === 'fulfilled') engine = e.value;
      if (r.status === 'fulfilled') registry = r.value;
      if (e.status === 'rejected') throw e.reason;
      if (r.status === 'rejected') throw r.reason;
      if (engine === undefined || registry === undefined)
        throw new Error('unreachable: engine or registry missing');
      await assertPrivateEngineAnswers(engine.socketPath, engine.dataRoot);
      const rig: Rig = { root, engine, registry };
      const started = Date.now();
      const v1 = await pushBenchImage(rig, 'v1');
      const v2 = await pushBenchImage(rig, 'v2');
      log(`built and pushed ${v1.digestRef} and v2 in ${Date.now() - started} ms`);
      if (want('pull')) await benchPull(rig, v1);
      if (want('bytes')) await benchBytes(rig, v1, v2);
    }
    if (want('db')) await benchDb(root, base);
  } finally {
    await stopAll();
  }
}

function pushBenchImage(rig: Rig, version: 'v1' | 'v2'): Promise<PushedImage> {
  return pushHandBuiltImage(rig.registry.host, {
    repository: `${rig.registry.host}/bench/big`,
    layers: [
      ...SHARED_LAYERS.map((bytes, i) => ({ key: `bench shared ${i}`, bytes })),
      { key: `bench top ${version}`, bytes: TOP_LAYER },
    ],
    idLabel: `bench ${version}`,
    manifestLabel: `bench ${version}`,
    tags: [version],
  });
}

function dependentOnly(name: string): Target {
  const image: TargetImage = {
    name,
    appId: 1,
    serviceId: 1,
    serviceName: 'big',
    imageId: 1,
    releaseId: 1,
    commit: 'b1',
  };
  return { services: [], dependent: [image] };
}

function serviceTarget(name: string, commit: string): Target {
  const service: TargetService = {
    name,
    appId: 1,
    serviceId: 1,
    serviceName: 'main',
    imageId: 1,
    releaseId: 1,
    commit,
    strategy: 'download-then-kill',
  };
  return { services: [service], dependent: [] };
}

async function keeperOn(rig: Rig): Promise<{ keeper: ImageKeeper; db: SqlJsStateDb }> {
  const dir = mkdtempSync(join(rig.root, 'db-'));
  const db = await SqlJsStateDb.open(new NodeFileSystem(), join(dir, 'state.db'));
  const engine = new DockerEngine({ socketPath: rig.engine.socketPath, stopTimeoutSeconds: 1 });
  const keeper = new ImageKeeper({ db, targets: db, engine, containers: engine, clock: REAL_CLOCK });
  return { keeper, db };
}

async function benchPull(rig: Rig, image: PushedImage): Promise<void> {
  const docker = rig.engine.client(120_000);
  const compressed = image.layers.reduce((sum, l) => sum + l.size, 0);
  const expectPulled = async (what: string): Promise<void> => {
    const info = await docker.getImage(image.imageId).inspect();
    if (!(info.RepoDigests ?? []).includes(image.digestRef))
      throw new Error(`${what} left no ${image.digestRef}`);
  };
  const viaDocker = async (): Promise<number> => {
    const started = performance.now();
    await runDockerCli(rig.engine.socketPath, ['pull', image.digestRef], {
      configDir: join(rig.root, 'docker-config'),
    });
    const ms = performance.now() - started;
    await expectPulled('docker pull');
    return ms;
  };
  const viaKeeper = async (): Promise<number> => {
    const { keeper, db } = await keeperOn(rig);
    try {
      const started = performance.now();
      await keeper.apply(dependentOnly(image.digestRef));
      const ms = performance.now() - started;
      await expectPulled('image-keeper apply');
      return ms;
    } finally {
      await db.close();
    }
  };
  // The engine API alone (dockerode, no CLI process): what image-keeper's own protocol costs on top.
  const viaApi = async (): Promise<number> => {
    const started = performance.now();
    await pullImage(docker, image.digestRef);
    const ms = performance.now() - started;
    await expectPulled('API pull');
    return ms;
  };
  // Warm-up of each way (registry blobs in the page cache, dockerd's and sql.js' code loaded); not reported.
  for (const warm of [viaDocker, viaApi, viaKeeper]) {
    await resetEngine(docker);
    await warm();
  }
  const times = { keeper: [] as number[], docker: [] as number[], api: [] as number[] };
  const runs = { keeper: viaKeeper, docker: viaDocker, api: viaApi };
  const rotation = ['keeper', 'docker', 'api'] as const;
  for (let rep = 0; rep < REPS; rep++) {
    // Rotate who goes first, so drift (cache, temperature) does not favour one side.
    for (let k = 0; k < rotation.length; k++) {
      const who = rotation[(rep + k) % rotation.length]!;
      await resetEngine(docker);
      times[who].push(await runs[who]());
    }
    log(
      `pull rep ${rep + 1}/${REPS}: ${rotation.map((w) => `${w} ${round(times[w].at(-1) ?? 0)} ms`).join(', ')}`,
    );
  }
  const keeperMs = times.keeper;
  const dockerMs = times.docker;
  await resetEngine(docker);
  const keeper = median(keeperMs);
  const plain = median(dockerMs);
  emit({
    bench: 'engine-pull',
    image: image.digestRef,
    layers: image.layers.length,
    compressedBytes: compressed,
    reps: REPS,
    keeperMs: keeperMs.map((v) => round(v)),
    dockerMs: dockerMs.map((v) => round(v)),
    keeperMedianMs: round(keeper),
    dockerMedianMs: round(plain),
    apiMs: times.api.map((v) => round(v)),
    apiMedianMs: round(median(times.api)),
    keeperMiBps: round(compressed / MiB / (keeper / 1000)),
    dockerMiBps: round(compressed / MiB / (plain / 1000)),
  });
  const ratio = keeper / plain;
  emit({
    bench: 'engine-pull-ratio',
    what: 'image-keeper apply / docker pull, medians',
    ratio: round(ratio, 3),
    aim: 1.05,
    ok: ratio <= 1.05,
  });
  emit({
    bench: 'engine-pull-ratio-api',
    what: "image-keeper apply / engine API pull (dockerode, no CLI process), medians: the protocol's own cost",
    ratio: round(keeper / median(times.api), 3),
  });
}

async function benchBytes(rig: Rig, v1: PushedImage, v2: PushedImage): Promise<void> {
  const docker = rig.engine.client(120_000);
  const proxy = await ByteCountingProxy.start(rig.registry.host);
  try {
    await resetEngine(docker);
    const { keeper, db } = await keeperOn(rig);
    try {
      await keeper.apply(serviceTarget(proxy.through(v1.digestRef), 'c1'));
      const installed = proxy.served();
      proxy.reset();
      await keeper.apply(serviceTarget(proxy.through(v2.digestRef), 'c2'));
      const served = proxy.served();
      const [m1, m2] = await Promise.all([manifestLayers(rig, v1), manifestLayers(rig, v2)]);
      const had = new Set(m1.map((l) => l.digest));
      const missing = m2.filter((l) => !had.has(l.digest));
      const missingBytes = missing.reduce((sum, l) => sum + l.size, 0);
      const layerBytes = missing.reduce((sum, l) => sum + (served.perBlob.get(l.digest) ?? 0), 0);
      const otherLayers = [...served.perBlob.keys()].filter(
        (d) => m2.some((l) => l.digest === d) && !missing.some((l) => l.digest === d),
      );
      const total = served.blobs + served.manifests + served.other;
      emit({
        bench: 'engine-update-bytes',
        from: v1.digestRef,
        to: v2.digestRef,
        installBytesServed: installed.blobs + installed.manifests + installed.other,
        layersMissing: missing.length,
        missingLayerBytes: missingBytes,
        servedBytes: total,
        servedLayerBytes: layerBytes,
        servedConfigAndManifestBytes: total - layerBytes,
        sharedLayersServedAgain: otherLayers.length,
        requests: served.requests,
      });
      const ratio = total / missingBytes;
      emit({
        bench: 'engine-update-bytes-ratio',
        what: 'bytes served for the update / compressed bytes of the missing layers',
        ratio: round(ratio, 4),
        layerRatio: round(layerBytes / missingBytes, 4),
        aim: 1.0,
        ok: layerBytes === missingBytes && otherLayers.length === 0 && ratio <= 1.01,
      });
    } finally {
      await db.close();
    }
    await resetEngine(docker);
  } finally {
    await proxy.stop();
  }
}

async function manifestLayers(rig: Rig, image: PushedImage): Promise<{ digest: string; size: number }[]> {
  const path = image.repository.slice(rig.registry.host.length + 1);
  const response = await fetch(`${rig.registry.url}/v2/${path}/manifests/${image.digest}`, {
    headers: {
      accept:
        'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  if (response.status !== 200) throw new Error(`GET manifest ${image.digestRef}: HTTP ${response.status}`);
  const manifest = (await response.json()) as { layers: { digest: string; size: number }[] };
  return manifest.layers;
}

async function benchDb(root: string, base: number): Promise<void> {
  const fs = new NodeFileSystem();
  for (const rows of [10, 1000, 10_000]) {
    const dir = join(root, `db-bench-${rows}`);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'state.db');
    await (await SqlJsStateDb.open(fs, path)).close();
    await prefill(path, rows);
    const db = await SqlJsStateDb.open(fs, path);
    const reps = rows >= 10_000 ? 21 : 41;
    const times: number[] = [];
    try {
      if ((await db.listRows()).length !== rows) throw new Error(`prefill of ${rows} rows did not take`);
      for (let i = 0; i < reps; i++) {
        const started = performance.now();
        await db.insertRow(row(rows + i));
        times.push(performance.now() - started);
      }
    } finally {
      await db.close();
    }
    const ms = median(times);
    emit({
      bench: 'db-commit',
      what: 'insertRow: one row, durable (export, write, fsync, rename, fsync dir)',
      rows,
      reps,
      medianMs: round(ms, 3),
      maxMs: round(Math.max(...times), 3),
      fileBytes: readFileSync(path).length,
      ratioToBaseline: round(ms / base, 4),
    });
  }
}

function row(i: number) {
  const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
  return {
    name: `127.0.0.1:5000/fleet/s${i}@sha256:${hex(`manifest ${i}`)}`,
    appId: 1 + (i % 50),
    serviceId: i,
    serviceName: `s${i}`,
    imageId: i,
    releaseId: 1,
    commit: `c${i % 7}`,
    dockerImageId: `sha256:${hex(`config ${i}`)}`,
  };
}

/** Writes `count` rows in one transaction straight into the DB file (the adapter would commit each alone). */
async function prefill(path: string, count: number): Promise<void> {
  const SQL = await loadSqlJs();
  const db = new SQL.Database(readFileSync(path));
  try {
    db.run('BEGIN');
    const insert = db.prepare(
      'INSERT INTO image (name, appId, serviceId, serviceName, imageId, releaseId, "commit", dockerImageId) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (let i = 0; i < count; i++) {
      const r = row(i);
      insert.run([
        r.name,
        r.appId,
        r.serviceId,
        r.serviceName,
        r.imageId,
        r.releaseId,
        r.commit,
        r.dockerImageId,
      ]);
    }
    insert.free();
    db.run('COMMIT');
    writeFileSync(path, db.export());
  } finally {
    db.close();
  }
}

await main();
