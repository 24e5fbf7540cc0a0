import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { acquireLock } from './file-lock.js';

// Above Linux's largest pid_max (2^22), so no process can have it.
const DEAD_PID = 2 ** 30;

describe('acquireLock', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-keeper-lock-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('holds the lock until released, then it can be taken again', async () => {
    const path = join(dir, 'a.db.lock');
    const lock = await acquireLock(path);
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await expect(acquireLock(path)).rejects.toMatchObject({
      code: 'DB_LOCKED',
      message: `another image-keeper (pid ${process.pid}) holds ${path}`,
    });
    await lock.release();
    await lock.release();
    const again = await acquireLock(path);
    await again.release();
    expect(await readdir(dir)).toEqual([]);
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

  it('release leaves a lock that is no longer ours alone', async () => {
    const path = join(dir, 'e.db.lock');
    const lock = await acquireLock(path);
    await writeFile(path, `${DEAD_PID}\n\n`);
    await lock.release();
    expect(await readFile(path, 'utf8')).toBe(`${DEAD_PID}\n\n`);
  });
});
