/**
 * A field failure brought into the lab: an update cut by a real SIGKILL of the CLI at an exact protocol
 * step (IMAGE_KEEPER_CRASH_AT), `status` and `cleanup --dry-run` of the cut device, `capture` of it,
 * `image-keeper run` of the capture on the fakes, and the real device's own restart: both must end in
 * the same rows, images and containers (compared by digest: images the device had not pulled yet have
 * placeholder IDs in the capture).
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, test } from 'vitest';
import type { StatusReport } from '../../cli/status-command.js';
import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { CrashPoint } from '../../core/ports/crash-points.js';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { loadScenario } from '../../sim/scenario/load-scenario.js';
import { writeBalenaTarget } from './support/balena-target-file.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { resetEngine } from './support/reset-engine.js';
import { runCli } from './support/run-cli.js';

const info = inject('engine');
const privateEngine = PrivateEngine.attach(info.engine);
const docker = privateEngine.client(60_000);
const { mainV1, mainV2, workerV1 } = info.images;
const ENGINE = `unix://${info.socketPath}`;
const C1 = '4ba10998a6ebceb06ecf1a94bb2970c9';
const C2 = 'b946c4a2e1d0f6a3b5c7d9e1f3a5b7c9';

let dir: string;
let first: string;
let update: string;

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  dir = mkdtempSync(join(info.rootDir, 'cli-capture-'));
  first = writeBalenaTarget(dir, 'first', {
    appId: 1701,
    commit: C1,
    releaseId: 1001,
    services: {
      main: { id: 31001, imageId: 5401, image: mainV1.digestRef },
      worker: { id: 31002, imageId: 5402, image: workerV1.digestRef },
    },
  });
  update = writeBalenaTarget(dir, 'update', {
    appId: 1701,
    commit: C2,
    releaseId: 1002,
    services: {
      main: { id: 31001, imageId: 5411, image: mainV2.digestRef },
      worker: { id: 31002, imageId: 5412, image: workerV1.digestRef },
    },
  });
});

beforeEach(async () => {
  await resetEngine(docker);
});

afterAll(async () => {
  await privateEngine.ensureRunning();
  await resetEngine(docker);
});

/** A device state as comparable text: image IDs replaced by the image's references (identity by digest). */
function comparable(
  rows: readonly ImageRow[],
  images: readonly EngineImage[],
  containers: readonly Container[],
): { rows: string[]; images: string[]; containers: string[] } {
  const refsOf = (id: string | null): string => {
    if (id === null) return 'null';
    const image = images.find((i) => i.id === id);
    return image ? [...image.repoDigests, ...image.repoTags].sort().join(',') || 'dangling' : 'missing';
  };
  return {
    rows: rows
      .map((r) => `${r.name} ${r.appId}/${r.serviceName}@${r.commit} -> ${refsOf(r.dockerImageId)}`)
      .sort(),
    images: images.map((i) => refsOf(i.id)).sort(),
    containers: containers
      .map(
        (c) => `${c.service ? `${c.service.serviceName}@${c.service.commit}` : c.id} on ${refsOf(c.imageId)}`,
      )
      .sort(),
  };
}

const cases: { point: CrashPoint; match: string; after: string }[] = [
  // Step 1 of the pull protocol done, nothing pulled: a pending row that startup cleanup deletes.
  { point: 'after-row-stored', match: mainV2.digest, after: 'pending (pull not finished)' },
  // The old image deleted from the engine, its row not yet: a row pointing at nothing.
  { point: 'between-engine-delete-and-row-delete', match: mainV1.digest, after: 'image' },
];

describe('capture of an update cut by SIGKILL, replayed on the fakes', () => {
  for (const { point, match, after } of cases) {
    test(`cut at ${point}: the capture replays to the state the device reaches when it restarts`, async () => {
      const caseDir = mkdtempSync(join(dir, `${point}-`));
      const db = join(caseDir, 'images.sqlite');
      const onDevice = (args: readonly string[], env: Record<string, string> = {}) =>
        runCli([...args, '--db', db, '--engine', ENGINE], { env });
      expect((await onDevice(['apply', first])).code).toBe(0);

      const cut = await onDevice(['apply', update], {
        IMAGE_KEEPER_TEST_HOOKS: '1',
        IMAGE_KEEPER_CRASH_AT: `${point}:1:${match}`,
      });
      expect(cut.signal).toBe('SIGKILL');
      expect(cut.stderr).toContain(`image-keeper: crash hook: SIGKILL at ${point} #1 (`);
      // No finally block ran: the lock names a dead pid, and the next command takes it over.
      expect(existsSync(`${db}.lock`)).toBe(true);

      const status = await onDevice(['status']);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain('startup cleanup at the next start:');
      if (point === 'after-row-stored') {
        expect(status.stdout).toContain(`-> ${after}`);
        expect(status.stdout).toMatch(new RegExp(`delete row ${escape(mainV2.digestRef)} \\(no image\\)`));
      } else {
        expect(status.stdout).toMatch(
          new RegExp(`delete row ${escape(mainV1.digestRef)} \\(image [0-9a-f]{12} gone\\)`),
        );
      }
      const dry = await onDevice(['cleanup', '--dry-run']);
      expect(dry.code).toBe(0);
      expect(dry.stdout).toMatch(
        /^startup cleanup: would delete row .*\((no image|image [0-9a-f]{12} gone)\)$/m,
      );

      const capture = join(caseDir, 'capture.yaml');
      const captured = await onDevice(['capture', capture]);
      expect(captured.stderr).toBe('');
      expect(captured.code).toBe(0);
      expect(captured.stdout).toMatch(
        /^captured \d+ row\(s\), \d+ engine image\(s\), 2 container\(s\) and the persisted target into /,
      );
      expect(readFileSync(capture, 'utf8')).toContain('restart');

      const replay = await runCli(['run', capture]);
      expect(replay.stdout).toMatch(/^PASS capture-/m);
      expect(replay.code).toBe(0);
      const lab = await runScenario(await loadScenario(capture), { trace: false });
      expect(lab.failures).toEqual([]);
      const fake = lab.device.engine.durableState();
      const fakeState = comparable(lab.device.db.peek().rows, fake.images, fake.containers);

      // The device's own next start: apply without a file converges to the persisted target.
      const restart = await onDevice(['apply']);
      expect(restart.stderr).toBe('');
      expect(restart.code).toBe(0);
      const report = JSON.parse((await onDevice(['status', '--json'])).stdout) as StatusReport;
      const realImages: EngineImage[] = report.images.map((i) => ({ ...i, layers: [] }));
      const realState = comparable(report.rows, realImages, report.containers);
      expect(fakeState).toEqual(realState);
      expect(realState.rows).toEqual(
        [
          `${mainV2.digestRef} 1701/main@${C2} -> ${mainV2.digestRef}`,
          `${workerV1.digestRef} 1701/worker@${C2} -> ${workerV1.digestRef}`,
        ].sort(),
      );
    });
  }
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
