/**
 * Every failure the device CLI must survive, provoked for real: no engine named, an engine that is
 * down, a registry answering 401/404/500 or going silent (a loopback proxy), a full disk (a private
 * dockerd on a 24 MiB tmpfs, and a state DB on a nearly full tmpfs), a malformed or invalid target, a
 * truncated DB, a second instance. Each gives one line `image-keeper: <CODE>: <message>` on stderr, the
 * documented exit code, and loses nothing: rows, images and the DB file are as before.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import type { StatusReport } from '../../cli/status-command.js';
import { writeBalenaTarget } from './support/balena-target-file.js';
import { FlakyRegistryProxy } from './support/flaky-registry-proxy.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { resetEngine } from './support/reset-engine.js';
import { runCli, startCli, type CliResult } from './support/run-cli.js';

const info = inject('engine');
const privateEngine = PrivateEngine.attach(info.engine);
const docker = privateEngine.client(60_000);
const { mainV1, workerV1, bigV1 } = info.images;
const ENGINE = `unix://${info.socketPath}`;
const COMMIT = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';

let dir: string;
let proxy: FlakyRegistryProxy;

/** A one-release balena target with these services (name -> reference). */
function target(name: string, services: Record<string, string>, commit = COMMIT): string {
  let id = 0;
  return writeBalenaTarget(dir, name, {
    appId: 42,
    commit,
    releaseId: 4200,
    services: Object.fromEntries(
      Object.entries(services).map(([service, image]) => [
        service,
        { id: 31000 + ++id, imageId: 5000 + id, image },
      ]),
    ),
  });
}

/** The one stderr line of a failed command, checked for the `image-keeper: <CODE>: ` shape. */
function oneLine(r: CliResult, code: string): string {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^image-keeper: ${code}: \\S`));
  return lines[0]!;
}

async function rowsOf(db: string, engine = ENGINE): Promise<string[]> {
  const r = await runCli(['status', '--json', '--db', db, '--engine', engine]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as StatusReport).rows
    .map((row) => `${row.serviceName} ${row.name} -> ${row.dockerImageId ?? 'null'}`)
    .sort();
}

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  await resetEngine(docker);
  dir = mkdtempSync(join(info.rootDir, 'cli-errors-'));
  proxy = await FlakyRegistryProxy.start(info.registry.host);
});

afterEach(() => {
  proxy.clearFaults();
});

afterAll(async () => {
  await proxy.stop();
  await privateEngine.ensureRunning();
  await resetEngine(docker);
});

describe('usage and input', () => {
  test('no engine named: USAGE, exit 2; DOCKER_HOST names it when --engine is absent', async () => {
    const db = join(dir, 'usage', 'images.sqlite');
    const none = await runCli(['status', '--db', db]);
    expect(none.code).toBe(2);
    expect(oneLine(none, 'USAGE')).toContain('pass --engine unix:///path/to/docker.sock or set DOCKER_HOST');
    const tcp = await runCli(['status', '--db', db], { env: { DOCKER_HOST: 'tcp://127.0.0.1:2375' } });
    expect(tcp.code).toBe(2);
    expect(oneLine(tcp, 'USAGE')).toContain(
      'DOCKER_HOST "tcp://127.0.0.1:2375" is not a local engine socket',
    );
    const fromEnv = await runCli(['status', '--db', db], { env: { DOCKER_HOST: ENGINE } });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toContain(`engine:   ${ENGINE}`);
    // status only looks: a missing DB is not created.
    expect(existsSync(db)).toBe(false);
  });

  test('the crash hook is ignored (with a warning) unless test hooks are on, and refused when malformed', async () => {
    const db = join(dir, 'hook', 'images.sqlite');
    const ignored = await runCli(['status', '--db', db, '--engine', ENGINE], {
      env: { IMAGE_KEEPER_CRASH_AT: 'after-row-stored' },
    });
    expect(ignored.code).toBe(0);
    expect(ignored.stderr.trim()).toBe(
      'image-keeper: warning: IMAGE_KEEPER_CRASH_AT ignored: it is a test hook and IMAGE_KEEPER_TEST_HOOKS=1 is not set',
    );
    const bad = await runCli(['status', '--db', db, '--engine', ENGINE], {
      env: { IMAGE_KEEPER_CRASH_AT: 'after-lunch', IMAGE_KEEPER_TEST_HOOKS: '1' },
    });
    expect(bad.code).toBe(2);
    expect(oneLine(bad, 'USAGE')).toContain("unknown crash point 'after-lunch'");
  });

  test('a malformed or invalid target: INVALID_TARGET naming the file, exit 2, the DB untouched', async () => {
    const db = join(dir, 'input', 'images.sqlite');
    const good = target('input-good', { main: mainV1.digestRef });
    expect((await runCli(['apply', good, '--db', db, '--engine', ENGINE])).code).toBe(0);
    const before = readFileSync(db);

    const malformed = join(dir, 'malformed.json');
    writeFileSync(malformed, '{"apps": [');
    const m = await runCli(['apply', malformed, '--db', db, '--engine', ENGINE]);
    expect(m.code).toBe(2);
    // The parser may name the line and column of the problem (file:line:col).
    expect(oneLine(m, 'INVALID_TARGET')).toMatch(
      new RegExp(`${malformed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(:\\d+:\\d+)?: not valid JSON: `),
    );

    const invalid = join(dir, 'invalid.json');
    writeFileSync(
      invalid,
      JSON.stringify({ apps: [{ id: 42, commit: 'c1', services: [{ name: 'main' }] }] }),
    );
    const i = await runCli(['apply', invalid, '--db', db, '--engine', ENGINE]);
    expect(i.code).toBe(2);
    expect(oneLine(i, 'INVALID_TARGET')).toMatch(
      new RegExp(`^image-keeper: INVALID_TARGET: ${invalid}: .*image.*\\(at apps\\[0\\]\\.services\\[0\\]`),
    );

    expect(readFileSync(db).equals(before)).toBe(true);
    expect(await rowsOf(db)).toEqual([`main ${mainV1.digestRef} -> ${mainV1.imageId}`]);
  });
});

describe('the state DB', () => {
  test('a truncated DB: DB_CORRUPT naming the file, exit 2, the file kept; --recover-db moves it aside and adopts the images', async () => {
    const db = join(dir, 'corrupt', 'images.sqlite');
    const good = target('corrupt-good', { main: mainV1.digestRef });
    expect((await runCli(['apply', good, '--db', db, '--engine', ENGINE])).code).toBe(0);
    truncateSync(db, 1000);
    const damaged = readFileSync(db);

    for (const command of [['apply', good], ['status'], ['cleanup'], ['capture', join(dir, 'never.yaml')]]) {
      const r = await runCli([...command, '--db', db, '--engine', ENGINE]);
      expect(r.code, command[0]).toBe(2);
      expect(oneLine(r, 'DB_CORRUPT')).toContain(`state DB ${db} is corrupt: `);
      expect(r.stderr).toContain('--recover-db');
      expect(readFileSync(db).equals(damaged)).toBe(true);
      expect(existsSync(`${db}.lock`)).toBe(false);
    }

    const recovered = await runCli(['apply', good, '--recover-db', '--db', db, '--engine', ENGINE]);
    expect(recovered.stderr).toBe('');
    expect(recovered.code).toBe(0);
    const aside = readdirSync(join(dir, 'corrupt')).filter((f) => f.startsWith('images.sqlite.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(dir, 'corrupt', aside[0]!)).equals(damaged)).toBe(true);
    expect(recovered.events.find((e) => e['type'] === 'db-recovered')).toMatchObject({
      movedTo: join(dir, 'corrupt', aside[0]!),
    });
    // The image was still on the engine: saved by digest, nothing downloaded.
    expect(recovered.events.some((e) => e['type'] === 'progress')).toBe(false);
    expect(await rowsOf(db)).toEqual([`main ${mainV1.digestRef} -> ${mainV1.imageId}`]);
  });

  test('a second instance on the same DB fails at once with DB_LOCKED naming the holder, exit 4', async () => {
    const db = join(dir, 'locked', 'images.sqlite');
    // The first instance hangs in a pull whose blob stalls (pull timeout far away).
    proxy.inject({ kind: 'stall', afterBytes: 256 * 1024, times: 1 });
    const slow = target('locked-slow', { big: proxy.through(bigV1.digestRef) });
    const first = startCli(['apply', slow, '--pull-timeout', '120', '--db', db, '--engine', ENGINE]);
    try {
      await new Promise<void>((resolve, reject) => {
        let seen = '';
        first.child.stdout.on('data', (chunk: Buffer) => {
          seen += chunk.toString('utf8');
          if (seen.includes('"type":"progress"')) resolve();
        });
        first.child.once('close', () => reject(new Error(`the first instance ended early: ${seen}`)));
      });
      const second = await runCli(['status', '--db', db, '--engine', ENGINE]);
      expect(second.code).toBe(4);
      expect(oneLine(second, 'DB_LOCKED')).toBe(
        `image-keeper: DB_LOCKED: another image-keeper (pid ${first.child.pid}) holds ${db}.lock`,
      );
      expect(second.ms).toBeLessThan(5_000);
    } finally {
      first.child.kill('SIGKILL');
      await first.result;
    }
    // The holder died without releasing: the next start takes the lock over.
    expect((await runCli(['status', '--db', db, '--engine', ENGINE])).code).toBe(0);
  });

  test.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    '%s during a pull (docker stop, Ctrl-C) releases the lock and exits %i; the next apply converges',
    async (signal, code) => {
      const db = join(dir, `signal-${signal}`, 'images.sqlite');
      await resetEngine(docker); // the pull must really run (and no container of an earlier round may stay)
      proxy.inject({ kind: 'stall', afterBytes: 256 * 1024, times: 1 });
      const slow = target(`signal-${signal}`, { big: proxy.through(bigV1.digestRef) });
      const first = startCli(['apply', slow, '--pull-timeout', '120', '--db', db, '--engine', ENGINE]);
      await new Promise<void>((resolve, reject) => {
        let seen = '';
        first.child.stdout.on('data', (chunk: Buffer) => {
          seen += chunk.toString('utf8');
          if (seen.includes('"type":"progress"')) resolve();
        });
        first.child.once('close', () => reject(new Error(`apply ended early: ${seen}`)));
      });
      expect(readFileSync(`${db}.lock`, 'utf8').split('\n')[0]).toBe(String(first.child.pid));
      first.child.kill(signal);
      const stopped = await first.result;
      expect(stopped.code).toBe(code);
      expect(stopped.stderr).toBe(
        `image-keeper: stopped by ${signal}; ${db}.lock released, the state is kept (run again to continue)\n`,
      );
      expect(existsSync(`${db}.lock`)).toBe(false);
      const again = await runCli(['apply', slow, '--db', db, '--engine', ENGINE]);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(await rowsOf(db)).toEqual([`big ${proxy.through(bigV1.digestRef)} -> ${bigV1.imageId}`]);
    },
  );

  test('disk full at the DB (a nearly full 1 MiB tmpfs): DISK_FULL naming the file, exit 3, the DB as before', async () => {
    const mount = join(dir, 'dbfull');
    mkdirSync(mount);
    mountTmpfs(mount, '1m');
    try {
      const db = join(mount, 'images.sqlite');
      const good = target('dbfull-good', { main: mainV1.digestRef });
      expect((await runCli(['apply', good, '--db', db, '--engine', ENGINE])).code).toBe(0);
      const before = readFileSync(db);
      fillUpTo(mount, 8 * 1024);
      const next = target('dbfull-next', { main: mainV1.digestRef }, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb');
      const r = await runCli(['apply', next, '--db', db, '--engine', ENGINE]);
      expect(r.code).toBe(3);
      expect(oneLine(r, 'DISK_FULL')).toContain(`no space left on device writing ${db}.tmp-`);
      expect(readFileSync(db).equals(before)).toBe(true);
      expect(existsSync(`${db}.lock`)).toBe(false);
    } finally {
      unmount(mount);
    }
  });
});

describe('the registry, through a misbehaving loopback proxy', () => {
  let db: string;
  const installed = (): string => `main ${mainV1.digestRef} -> ${mainV1.imageId}`;

  beforeAll(async () => {
    db = join(dir, 'registry', 'images.sqlite');
    expect(
      (
        await runCli([
          'apply',
          target('registry-base', { main: mainV1.digestRef }),
          '--db',
          db,
          '--engine',
          ENGINE,
        ])
      ).code,
    ).toBe(0);
  });

  // Tag references: dockerd always asks the registry for a tag's manifest.
  const withWorker = (name: string): string =>
    target(name, { main: mainV1.digestRef, worker: proxy.through(workerV1.ref) });

  for (const status of [401, 404]) {
    test(`manifest ${status}: REGISTRY_ERROR (${status}), exit 3, not retried, the installed release kept`, async () => {
      proxy.inject({ kind: 'status', target: 'manifest', status });
      const r = await runCli(['apply', withWorker(`registry-${status}`), '--db', db, '--engine', ENGINE]);
      expect(r.code).toBe(3);
      expect(oneLine(r, 'REGISTRY_ERROR')).toContain(
        `pull of ${proxy.through(workerV1.ref)} failed (${status})`,
      );
      expect(r.events.filter((e) => e['type'] === 'retry')).toEqual([]);
      expect(r.events.some((e) => e['type'] === 'step' && e['phase'] === 'failed')).toBe(true);
      // The pending worker row (step 1 done, pull failed) is what startup cleanup deletes next time.
      expect(await rowsOf(db)).toEqual([installed(), `worker ${proxy.through(workerV1.ref)} -> null`]);
      expect((await docker.getImage(mainV1.imageId).inspect()).Id).toBe(mainV1.imageId);
    });
  }

  test('manifest 500 every time: retried with backoff, each retry a JSON line, then REGISTRY_ERROR (500), exit 3', async () => {
    proxy.inject({ kind: 'status', target: 'manifest', status: 500 });
    const r = await runCli(['apply', withWorker('registry-500'), '--db', db, '--engine', ENGINE]);
    expect(r.code).toBe(3);
    expect(oneLine(r, 'REGISTRY_ERROR')).toContain('(500)');
    const retries = r.events.filter((e) => e['type'] === 'retry');
    expect(retries.map((e) => [e['attempt'], e['delayMs']])).toEqual([
      [1, 50],
      [2, 100],
      [3, 200],
    ]);
    expect(String(retries[0]!['error'])).toContain('500');
    expect(await rowsOf(db)).toEqual([installed(), `worker ${proxy.through(workerV1.ref)} -> null`]);
  });

  test('manifest 500 twice, then the registry recovers: the retries show and apply converges, exit 0', async () => {
    proxy.inject({ kind: 'status', target: 'manifest', status: 500, times: 2 });
    const r = await runCli(['apply', withWorker('registry-500-twice'), '--db', db, '--engine', ENGINE]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.events.filter((e) => e['type'] === 'retry').length).toBeGreaterThanOrEqual(1);
    expect(r.events.at(-1)).toMatchObject({ type: 'done' });
    expect(await rowsOf(db)).toEqual([
      installed(),
      `worker ${proxy.through(workerV1.ref)} -> ${workerV1.imageId}`,
    ]);
  });

  test('a blob that goes silent: the pull is cut after --pull-timeout, retried visibly, and completes', async () => {
    proxy.inject({ kind: 'stall', afterBytes: 1024 * 1024, times: 1 });
    const big = proxy.through(bigV1.digestRef);
    const t = target('registry-timeout', {
      main: mainV1.digestRef,
      worker: proxy.through(workerV1.ref),
      big,
    });
    const r = await runCli(['apply', t, '--pull-timeout', '2', '--db', db, '--engine', ENGINE]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const retry = r.events.find((e) => e['type'] === 'retry');
    expect(retry).toMatchObject({ what: `pull ${big}`, attempt: 1 });
    expect(String(retry!['error'])).toContain('the engine sent nothing for 2000 ms');
    expect(await rowsOf(db)).toContain(`big ${big} -> ${bigV1.imageId}`);
  });
});

describe('the engine: a private dockerd on a 24 MiB tmpfs', () => {
  let mount: string;
  let tiny: PrivateEngine;
  let tinyUrl: string;
  let db: string;

  beforeAll(async () => {
    mount = join(dir, 'tiny');
    mkdirSync(mount);
    mountTmpfs(mount, '24m');
    tiny = await PrivateEngine.start({ dir: join(mount, 'e') });
    tinyUrl = `unix://${tiny.socketPath}`;
    db = join(dir, 'tiny-db', 'images.sqlite');
  });

  afterAll(async () => {
    await tiny?.stop();
    if (mount) unmount(mount);
  });

  test('disk full during a pull: DISK_FULL, exit 3, not retried; what was installed is kept', async () => {
    const r = await runCli([
      'apply',
      target('tiny', { main: mainV1.digestRef, big: bigV1.digestRef }),
      '--db',
      db,
      '--engine',
      tinyUrl,
    ]);
    expect(r.code).toBe(3);
    expect(oneLine(r, 'DISK_FULL')).toMatch(
      new RegExp(
        `pull of ${bigV1.digestRef.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} failed: .*no space left on device`,
      ),
    );
    expect(r.events.filter((e) => e['type'] === 'retry')).toEqual([]);
    expect(await rowsOf(db, tinyUrl)).toEqual([
      `big ${bigV1.digestRef} -> null`,
      `main ${mainV1.digestRef} -> ${mainV1.imageId}`,
    ]);
  });

  test('engine down (dockerd killed): ENGINE_UNAVAILABLE naming the socket, exit 3, the DB file as before', async () => {
    const before = readFileSync(db);
    await tiny.kill9();
    for (const command of [
      ['apply', target('tiny-down', { main: mainV1.digestRef })],
      ['status'],
      ['cleanup', '--dry-run'],
      ['capture', join(dir, 'down.yaml')],
    ]) {
      const r = await runCli([...command, '--db', db, '--engine', tinyUrl]);
      expect(r.code, command[0]).toBe(3);
      expect(oneLine(r, 'ENGINE_UNAVAILABLE')).toContain(
        `docker engine at ${tiny.socketPath} does not answer`,
      );
    }
    expect(readFileSync(db).equals(before)).toBe(true);
    expect(existsSync(join(dir, 'down.yaml'))).toBe(false);
  });
});

function mountTmpfs(path: string, size: string): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', path], {
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`mount -t tmpfs ${path} failed (the disk-full tests need root): ${r.stderr}`);
}

function unmount(path: string): void {
  const r = spawnSync('umount', [path], { encoding: 'utf8' });
  if (r.status !== 0) spawnSync('umount', ['-l', path]);
}

/** Fills the file system at `dir` until about `leave` bytes are free. */
function fillUpTo(dir: string, leave: number): void {
  const free = Number(
    spawnSync('stat', ['-f', '-c', '%a*%S', dir], { encoding: 'utf8' })
      .stdout.trim()
      .split('*')
      .reduce((a, b) => a * Number(b), 1),
  );
  writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, free - leave)));
}
