import type { Server } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bufferIo } from './cli-io.js';
import { emptyEngine } from './empty-engine.test-support.js';
import { main } from './main.js';

describe('read-only device commands (status, capture, cleanup --dry-run)', () => {
  let dir = '';
  let server: Server;
  let engine = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-keeper-ro-'));
    engine = `unix://${join(dir, 'engine.sock')}`;
    server = await emptyEngine(join(dir, 'engine.sock'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('create neither the DB directory nor the DB when there is none, and report an empty device', async () => {
    const db = join(dir, 'absent', 'state', 'images.sqlite');
    const status = bufferIo();
    expect(await main(['status', '--db', db, '--engine', engine], status), status.errors.join('\n')).toBe(0);
    expect(status.lines[0]).toBe(`state DB: ${db} (does not exist yet)`);
    const dry = bufferIo();
    expect(
      await main(['cleanup', '--dry-run', '--db', db, '--engine', engine], dry),
      dry.errors.join('\n'),
    ).toBe(0);
    expect(dry.lines.join('\n')).toContain('nothing removed');
    const out = join(dir, 'capture.yaml');
    const capture = bufferIo();
    expect(
      await main(['capture', out, '--db', db, '--engine', engine], capture),
      capture.errors.join('\n'),
    ).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(existsSync(join(dir, 'absent'))).toBe(false);
  });

  it('leave an existing DB directory as they found it: no DB file, no lock file', async () => {
    const folder = join(dir, 'empty-dir');
    await mkdir(folder);
    const db = join(folder, 'images.sqlite');
    for (const args of [['status'], ['cleanup', '--dry-run'], ['capture', join(dir, 'c2.yaml')]]) {
      const io = bufferIo();
      expect(await main([...args, '--db', db, '--engine', engine], io), io.errors.join('\n')).toBe(0);
    }
    expect(await readdir(folder)).toEqual([]);
  });

  it('refuse cleanup --dry-run --recover-db before touching anything (a dry run changes nothing)', async () => {
    const db = join(dir, 'recover', 'images.sqlite');
    const io = bufferIo();
    expect(await main(['cleanup', '--dry-run', '--recover-db', '--db', db, '--engine', engine], io)).toBe(2);
    expect(io.errors).toEqual([
      'image-keeper: USAGE: --dry-run changes nothing, and --recover-db would move the state DB aside: use one or the other',
    ]);
    expect(existsSync(join(dir, 'recover'))).toBe(false);
  });
});
