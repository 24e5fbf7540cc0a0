/**
 * `image-keeper apply`, `status` and `cleanup` as an operator runs them: the real binary against the
 * private engine and registry, a first install and two updates from balena target-state files, with an
 * operator's own image and container on the same engine that image-keeper must never touch.
 */
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { short } from '../../core/model/plan-step.js';
import type { StatusReport } from '../../cli/status-command.js';
import { writeBalenaTarget } from './support/balena-target-file.js';
import { buildChildImage, runDockerCli } from './support/docker-cli.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { resetEngine } from './support/reset-engine.js';
import { runCli, runCliOnTty, type CliResult } from './support/run-cli.js';

const info = inject('engine');
const privateEngine = PrivateEngine.attach(info.engine);
const docker = privateEngine.client(60_000);
const { base, mainV1, mainV2, workerV1, bigV1 } = info.images;
const ENGINE = `unix://${info.socketPath}`;
const APP = 1701;
const C1 = '4ba10998a6ebceb06ecf1a94bb2970c9';
const C2 = 'b946c4a2e1d0f6a3b5c7d9e1f3a5b7c9';
const C3 = 'c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3';

let dir: string;
let db: string;
let targets: { first: string; update1: string; update2: string };
let foreignContainer: string;

const device = (args: readonly string[]): readonly string[] => [...args, '--db', db, '--engine', ENGINE];
const cli = (args: readonly string[]): Promise<CliResult> => runCli(device(args));
const imageExists = async (ref: string): Promise<boolean> =>
  docker
    .getImage(ref)
    .inspect()
    .then(
      () => true,
      () => false,
    );

async function status(): Promise<StatusReport> {
  const r = await cli(['status', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as StatusReport;
}

function rowsOf(report: StatusReport): string[] {
  return report.rows
    .map((r) => `${r.serviceName}@${r.commit.slice(0, 2)} ${r.name} -> ${r.dockerImageId ?? 'null'}`)
    .sort();
}

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  await resetEngine(docker);
  dir = mkdtempSync(join(info.rootDir, 'cli-apply-'));
  db = join(dir, 'var', 'lib', 'image-keeper', 'images.sqlite');
  targets = {
    first: writeBalenaTarget(dir, 'first', {
      appId: APP,
      commit: C1,
      releaseId: 1001,
      services: {
        main: { id: 31001, imageId: 5401, image: mainV1.digestRef },
        worker: { id: 31002, imageId: 5402, image: workerV1.digestRef },
      },
    }),
    update1: writeBalenaTarget(dir, 'update1', {
      appId: APP,
      commit: C2,
      releaseId: 1002,
      services: {
        main: { id: 31001, imageId: 5411, image: mainV2.digestRef },
        worker: { id: 31002, imageId: 5412, image: workerV1.digestRef },
      },
    }),
    update2: writeBalenaTarget(dir, 'update2', {
      appId: APP,
      commit: C3,
      releaseId: 1003,
      services: {
        main: { id: 31001, imageId: 5421, image: mainV2.digestRef },
        big: { id: 31003, imageId: 5423, image: bigV1.digestRef },
      },
    }),
  };
  // An operator's own image and (created, never started) container on the same engine.
  await runDockerCli(info.socketPath, ['pull', base.ref]);
  await runDockerCli(info.socketPath, ['tag', base.ref, 'operator/tool:1']);
  foreignContainer = (
    await runDockerCli(info.socketPath, ['create', '--network', 'none', 'operator/tool:1', '/bin/sh'])
  ).stdout.trim();
});

afterAll(async () => {
  await privateEngine.ensureRunning();
  await resetEngine(docker);
});

describe('apply: a first install and two updates', () => {
  test('first install: JSON lines with progress per image, exit 0, a DB file of mode 0600 and no lock left', async () => {
    const r = await cli(['apply', targets.first]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(r.events).toHaveLength(lines.length);
    const types = new Set(r.events.map((e) => e['type']));
    for (const type of ['device', 'startup-cleanup', 'pass', 'step', 'progress', 'converged', 'done'])
      expect(types).toContain(type);
    expect(r.events[0]).toMatchObject({ type: 'device', db, engine: ENGINE, dbCreated: true });
    const lastOf = (ref: string) =>
      r.events.filter((e) => e['type'] === 'progress' && e['ref'] === ref).at(-1);
    for (const image of [mainV1, workerV1]) {
      const last = lastOf(image.digestRef);
      expect(last, image.digestRef).toBeDefined();
      expect(last!['layersDone']).toBe(last!['layersTotal']);
      expect(last!['bytesDone']).toBe(last!['bytesTotal']);
      expect(last).toHaveProperty('bytesPerSecond');
      expect(last).toHaveProperty('etaSeconds');
    }
    expect(lastOf(mainV1.digestRef)!['bytesTotal']).toBeGreaterThan(1024 * 1024);
    expect(statSync(db).mode & 0o777).toBe(0o600);
    expect(existsSync(`${db}.lock`)).toBe(false);

    const report = await status();
    expect(rowsOf(report)).toEqual(
      [
        `main@4b ${mainV1.digestRef} -> ${mainV1.imageId}`,
        `worker@4b ${workerV1.digestRef} -> ${workerV1.imageId}`,
      ].sort(),
    );
    const services = report.containers
      .filter((c) => c.service)
      .map((c) => `${c.service!.serviceName} ${c.imageId}`)
      .sort();
    expect(services).toEqual([`main ${mainV1.imageId}`, `worker ${workerV1.imageId}`]);
  });

  test('update 1: shared layers are not downloaded again, the unchanged image is saved, the old one removed', async () => {
    // The operator pins the old main image under their own tag: it must survive as theirs.
    await runDockerCli(info.socketPath, ['tag', mainV1.imageId, 'operator/pinned:v1']);
    const r = await cli(['apply', targets.update1]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const v2 = r.events.filter((e) => e['type'] === 'progress' && e['ref'] === mainV2.digestRef).at(-1);
    expect(v2).toMatchObject({ layersDone: 3, layersTotal: 3 });
    // Only the v2 app layer crossed the wire: base and the 1 MiB lib layer were already there.
    expect(v2!['bytesTotal'] as number).toBeLessThan(256 * 1024);
    expect(r.events.some((e) => e['type'] === 'progress' && e['ref'] === workerV1.digestRef)).toBe(false);
    expect(
      r.events.some(
        (e) =>
          e['type'] === 'step' &&
          e['phase'] === 'done' &&
          String(e['step']).startsWith(`save ${workerV1.digestRef}`),
      ),
    ).toBe(true);

    const report = await status();
    expect(rowsOf(report)).toEqual(
      [
        `main@b9 ${mainV2.digestRef} -> ${mainV2.imageId}`,
        `worker@b9 ${workerV1.digestRef} -> ${workerV1.imageId}`,
      ].sort(),
    );
    const pinned = report.images.find((i) => i.id === mainV1.imageId);
    expect(pinned).toMatchObject({
      mark: 'foreign',
      repoTags: ['operator/pinned:v1'],
      repoDigests: [],
      needs: [],
    });
    expect(await imageExists('operator/tool:1')).toBe(true);
    expect((await docker.getContainer(foreignContainer).inspect()).Id).toBe(foreignContainer);
  });

  test('update 2 on a terminal: a live bar per image, then a line with size, layers, time and speed', async () => {
    const r = await runCliOnTty(device(['apply', targets.update2]));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('\u001b['); // the bars are redrawn in place
    expect(r.stdout).toMatch(/\[[=> ]{20}\] +\d+%/);
    expect(r.stdout).toMatch(
      new RegExp(
        `✓ fetch ${bigV1.digestRef.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*\\(\\d+\\.\\d MiB, 2/2 layers in .*/s\\)`,
      ),
    );
    expect(r.stdout).toMatch(/converged after \d+ pass/);
    expect(r.stdout).not.toContain('{"type"');

    const report = await status();
    expect(rowsOf(report)).toEqual([
      `big@c3 ${bigV1.digestRef} -> ${bigV1.imageId}`,
      `main@c3 ${mainV2.digestRef} -> ${mainV2.imageId}`,
    ]);
    expect(await imageExists(workerV1.imageId)).toBe(false);
    expect(report.containers.some((c) => c.service?.serviceName === 'worker')).toBe(false);
    expect(await imageExists('operator/tool:1')).toBe(true);
    expect(await imageExists('operator/pinned:v1')).toBe(true);
    expect((await docker.getContainer(foreignContainer).inspect()).Id).toBe(foreignContainer);
  });
});

describe('status and cleanup', () => {
  test('status: rows, images marked managed/foreign with why they are needed, containers, next steps, disk', async () => {
    const r = await cli(['status']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = r.stdout;
    expect(text).toContain(`state DB: ${db} (2 row(s))`);
    expect(text).toContain(`engine:   ${ENGINE}`);
    expect(text).toContain(`target:   2 service(s), 0 dependent image(s)`);
    expect(text).toContain(`${APP}/big@c3d5e7f9 = ${bigV1.digestRef}`);
    expect(text).toMatch(new RegExp(`#\\d+ ${APP}/main@c3d5e7f9 .* -> ${short(mainV2.imageId)}`));
    const imageLine = (id: string): string =>
      text.split('\n').find((l) => l.startsWith(`  ${short(id)} `)) ?? '';
    expect(imageLine(mainV2.imageId)).toMatch(/managed .*\[needed: (running|stopped) container, target\]/);
    expect(imageLine(bigV1.imageId)).toMatch(/managed .*\[needed: (running|stopped) container, target\]/);
    expect(imageLine(base.imageId)).toMatch(/foreign .*operator\/tool:1.*\[needed: stopped container\]/);
    expect(imageLine(mainV1.imageId)).toMatch(/foreign .*operator\/pinned:v1 .*never removed/);
    expect(text).toContain(`${foreignContainer.slice(0, 12)} foreign on ${short(base.imageId)} stopped`);
    expect(text).toContain('next steps: none (converged)');
    expect(text).toMatch(/disk: {5}images \d+\.\d MiB, partial pulls 0 B/);
  });

  test('cleanup --dry-run prints the dangling image it would remove and removes nothing; cleanup removes it', async () => {
    const main = (await docker.listContainers({ all: true })).find(
      (c) => c.Labels['io.image-keeper.service-name'] === 'main',
    );
    const dangling = (await runDockerCli(info.socketPath, ['commit', main!.Id])).stdout.trim();
    const dry = await cli(['cleanup', '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout.trim()).toBe(
      `idle cleanup: would remove image ${short(dangling)} (dangling: no tag, no digest, no row, no container)`,
    );
    expect(await imageExists(dangling)).toBe(true);

    const real = await cli(['cleanup']);
    expect(real.stderr).toBe('');
    expect(real.code).toBe(0);
    expect(real.stdout.trim()).toBe(
      `idle cleanup: removed image ${short(dangling)} (dangling: no tag, no digest, no row, no container)`,
    );
    expect(await imageExists(dangling)).toBe(false);
    for (const kept of [mainV2.imageId, bigV1.imageId, 'operator/tool:1', 'operator/pinned:v1'])
      expect(await imageExists(kept), kept).toBe(true);

    const again = await cli(['cleanup']);
    expect(again.stdout.trim()).toBe('nothing to clean up: nothing was changed');
  });
});

describe('an operator builds an image FROM a managed one', () => {
  const CHILD_APP = 1702;
  let childDb: string;
  const childDevice = (args: readonly string[]): Promise<CliResult> =>
    runCli([...args, '--db', childDb, '--engine', ENGINE]);
  const oneService = (name: string, commit: string, releaseId: number, image: string): string =>
    writeBalenaTarget(dir, name, {
      appId: CHILD_APP,
      commit,
      releaseId,
      services: { tool: { id: 32001, imageId: releaseId, image } },
    });

  beforeAll(async () => {
    await resetEngine(docker);
    childDb = join(dir, 'child', 'images.sqlite');
  });

  test('the managed image, no longer needed, goes to whoever built on it: apply converges, exit 0, no row left', async () => {
    const first = await childDevice(['apply', oneService('child-first', C1, 2001, workerV1.digestRef)]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    // Offline: the classic builder, FROM the managed image by digest, records it as the parent.
    await buildChildImage(
      info.socketPath,
      join(dir, 'child-context'),
      workerV1.digestRef,
      'operator/child:1',
      'operator.built=yes',
    );
    const child = await docker.getImage('operator/child:1').inspect();
    expect(child.Parent).toBe(workerV1.imageId);
    // Docker refuses even a forced delete of a parent: this is what the update below meets.
    await expect(docker.getImage(workerV1.imageId).remove({ force: true })).rejects.toMatchObject({
      statusCode: 409,
    });

    const update = await childDevice(['apply', oneService('child-update', C2, 2002, mainV1.digestRef)]);
    expect(update.stderr).toBe('');
    expect(update.code).toBe(0);
    expect(update.events.filter((e) => e['type'] === 'step' && e['phase'] === 'failed')).toEqual([]);
    expect(update.events.at(-1)).toMatchObject({ type: 'done' });
    const report = JSON.parse((await childDevice(['status', '--json'])).stdout) as StatusReport;
    expect(report.rows.map((r) => `${r.serviceName} ${r.name} -> ${r.dockerImageId ?? 'null'}`)).toEqual([
      `tool ${mainV1.digestRef} -> ${mainV1.imageId}`,
    ]);
    // The child and the layers under it stay, the parent image with them.
    expect((await docker.getImage('operator/child:1').inspect()).RootFS.Layers).toEqual(workerV1.layers);
    expect(await imageExists(workerV1.imageId)).toBe(true);

    // And it stays converged: the next start changes nothing.
    const again = await childDevice(['apply']);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(again.events.filter((e) => e['type'] === 'step')).toEqual([]);
    expect(await imageExists('operator/child:1')).toBe(true);
  });
});
