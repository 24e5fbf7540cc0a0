import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isKeeperError } from '../../core/errors.js';
import { NodeFileSystem } from './node-file-system.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('NodeFileSystem', () => {
  const fs = new NodeFileSystem();
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-keeper-nodefs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes, syncs, renames, lists and unlinks', async () => {
    const sub = join(dir, 'a', 'b');
    await fs.mkdirp(sub);
    await fs.mkdirp(sub);
    await fs.writeFile(join(sub, 'f.tmp'), text('data'), { mode: 0o600 });
    await fs.fsync(join(sub, 'f.tmp'));
    await fs.rename(join(sub, 'f.tmp'), join(sub, 'f'));
    await fs.fsyncDir(sub);
    expect(await fs.readFile(join(sub, 'f'))).toEqual(text('data'));
    expect((await stat(join(sub, 'f'))).mode & 0o777).toBe(0o600);
    expect(await fs.list(sub)).toEqual(['f']);
    await fs.unlink(join(sub, 'f'));
    await fs.unlink(join(sub, 'f'));
    expect(await fs.readFile(join(sub, 'f'))).toBeNull();
    expect(await fs.list(join(dir, 'missing'))).toEqual([]);
  });

  it('truncates an existing file on write', async () => {
    const file = join(dir, 'trunc');
    await fs.writeFile(file, text('a long first version'));
    await fs.writeFile(file, text('short'));
    expect(await fs.readFile(file)).toEqual(text('short'));
  });

  it.skipIf(!existsSync('/dev/full'))('maps ENOSPC to DISK_FULL naming the path', async () => {
    const error = await fs.writeFile('/dev/full', text('x')).catch((e: unknown) => e);
    expect(isKeeperError(error, 'DISK_FULL')).toBe(true);
    expect((error as Error).message).toBe('no space left on device writing /dev/full');
  });
});
