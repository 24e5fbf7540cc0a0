import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { acquireLock, startTimeOf } from './file-lock.js';

// Above Linux's largest pid_max (2^22), so no process can have it.
const DEAD_PID = 2 ** 30;

describe('acquireLock', () => {
  let dir = '';
  let boot = '';
  /** A live process that is not image-keeper: stands in for another holder, or for a reused pid. */
  let other: ChildProcess;
  let otherPid = 0;
  let otherStart = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-keeper-lock-'));
    boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    other = spawn('sleep', ['60'], { stdio: 'ignore' });
    otherPid = other.pid!;
    otherStart = (await startTimeOf(otherPid))!;
  });
  afterAll(async () => {
    other.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('records pid, boot id and start time; a live holder with that start time keeps it', async () => {
    const path = join(dir, 'a.db.lock');
    const lock = await acquireLock(path);
    const [pid, bootLine, start] = (await readFile(path, 'utf8')).split('\n');
    expect([pid, bootLine]).toEqual([String(process.pid), boot]);
    expect(start).toMatch(/^\d+$/);
    expect(start).toBe(await startTimeOf(process.pid));
    await lock.release();
    await lock.release();
    expect(await readdir(dir)).toEqual([]);

    await writeFile(path, `${otherPid}\n${boot}\n${otherStart}\n`);
    await expect(acquireLock(path)).rejects.toMatchObject({
      code: 'DB_LOCKED',
      message: `another image-keeper (pid ${otherPid}) holds ${path}`,
    });
    // A lock of an older version (no start time) whose pid is alive also holds.
    await writeFile(path, `${otherPid}\n${boot}\n`);
    await expect(acquireLock(path)).rejects.toMatchObject({ code: 'DB_LOCKED' });
    await rm(path);
  });

  it('takes over a lock naming its own pid: a process never holds it twice (a dead holder, pid reused)', async () => {
    const path = join(dir, 'own.db.lock');
    await writeFile(path, `${process.pid}\n${boot}\n${await startTimeOf(process.pid)}\n`);
    const lock = await acquireLock(path);
    await lock.release();
    await writeFile(path, `${process.pid}\n${boot}\n`);
    const again = await acquireLock(path);
    await again.release();
  });

  it('takes over a lock whose live pid started at another time (the pid was reused)', async () => {
    const path = join(dir, 'reused.db.lock');
    await writeFile(path, `${otherPid}\n${boot}\n${Number(otherStart) + 1}\n`);
    const lock = await acquireLock(path);
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await lock.release();
    await writeFile(path, `${process.ppid}\n${boot}\n1\n`);
    const again = await acquireLock(path);
    await again.release();
  });

  it('removes temp files that killed holders left, and keeps those of live ones', async () => {
    const path = join(dir, 'tmp.db.lock');
    const dead = `tmp.db.lock.${DEAD_PID}.1700000000000.tmp`;
    const reused = `tmp.db.lock.${otherPid}.1700000000001.tmp`;
    const writing = `tmp.db.lock.${otherPid}.1700000000002.tmp`;
    const unrelated = 'tmp.db.lock.notes.tmp';
    await writeFile(join(dir, dead), `${DEAD_PID}\n${boot}\n5\n`);
    await writeFile(join(dir, reused), `${otherPid}\n${boot}\n${Number(otherStart) + 1}\n`);
    await writeFile(join(dir, writing), '');
    await writeFile(join(dir, unrelated), 'x');
    const lock = await acquireLock(path);
    expect((await readdir(dir)).filter((n) => n.startsWith('tmp.')).sort()).toEqual(
      ['tmp.db.lock', unrelated, writing].sort(),
    );
    await lock.release();
    await rm(join(dir, writing));
    await rm(join(dir, unrelated));
  });

  it('takes over a lock whose process is dead', async () => {
    const path = join(dir, 'b.db.lock');
    await writeFile(path, `${DEAD_PID}\n\n`);
    const lock = await acquireLock(path);
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await lock.release();
  });

  it('takes over a lock from an earlier boot even if its pid is alive now', async () => {
    const path = join(dir, 'c.db.lock');
    await writeFile(path, `${process.pid}\nan-earlier-boot\n`);
    const lock = await acquireLock(path);
    await lock.release();
  });

  it('takes over a lock file it cannot parse', async () => {
    const path = join(dir, 'd.db.lock');
    await writeFile(path, 'garbage');
    const lock = await acquireLock(path);
    await lock.release();
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s releases the lock and ends the holder with %i (releaseOnSignals)', async (signal, code) => {
    const path = join(dir, `signal-${signal}.db.lock`);
    const script = join(dir, `holder-${signal}.mts`);
    const module = new URL('./file-lock.js', import.meta.url).href;
    await writeFile(
      script,
      `import { acquireLock, releaseOnSignals } from ${JSON.stringify(module)};\n` +
        `const lock = await acquireLock(${JSON.stringify(path)});\n` +
        `releaseOnSignals(lock);\n` +
        `console.log('held');\n` +
        `setInterval(() => undefined, 1000);\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => chunk.toString('utf8').includes('held') && resolve());
      child.once('close', () => reject(new Error(`the holder ended early: ${stderr}`)));
    });
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe(String(child.pid));
    const exited = new Promise<number | null>((resolve) => child.once('close', (status) => resolve(status)));
    child.kill(signal);
    expect(await exited).toBe(code);
    expect(stderr).toBe(
      `image-keeper: stopped by ${signal}; ${path} released, the state is kept (run again to continue)\n`,
    );
    await expect(readFile(path, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(script);
  });

  it('release leaves a lock that is no longer ours alone', async () => {
    const path = join(dir, 'e.db.lock');
    const lock = await acquireLock(path);
    await writeFile(path, `${DEAD_PID}\n\n`);
    await lock.release();
    expect(await readFile(path, 'utf8')).toBe(`${DEAD_PID}\n\n`);
  });
});
