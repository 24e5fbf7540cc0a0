import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { bufferIo } from './cli-io.js';
import { main } from './main.js';
import { parseSimOptions } from './sim-command.js';

const CLI = fileURLToPath(new URL('../bin/image-keeper', import.meta.url));

/** Runs bin/image-keeper as a child (workers are forked from the real entry point). */
async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(CLI, [...args], { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('sim options', () => {
  it('every bad value is one USAGE line, exit 2, before any worker starts', async () => {
    const cases: [string[], string][] = [
      [['--runs', '-1'], "--runs wants a whole number of at least 1, got '-1'"],
      [['--runs', '1.5'], "--runs wants a whole number of at least 1, got '1.5'"],
      [['--runs', 'abc'], "--runs wants a whole number of at least 1, got 'abc'"],
      [['--runs', '0'], "--runs wants a whole number of at least 1, got '0'"],
      [['--workers', '0'], "--workers wants a whole number of at least 1, got '0'"],
      [['--workers', '2.5'], "--workers wants a whole number of at least 1, got '2.5'"],
      [['--seed', '-3'], "--seed wants a whole number, got '-3'"],
      [['--minutes', '0'], "--minutes wants a positive number, got '0'"],
      [['--minutes', 'Infinity'], "--minutes wants a positive number, got 'Infinity'"],
      [
        ['--shard', '0/2'],
        "--shard wants i/n with 1 <= i <= n (shards 1/2 and 2/2 make the whole), got '0/2'",
      ],
      [
        ['--shard', '3/2'],
        "--shard wants i/n with 1 <= i <= n (shards 1/2 and 2/2 make the whole), got '3/2'",
      ],
      [
        ['--path', '3:1'],
        '--path goes with the --seed printed next to it (a path means nothing without its seed)',
      ],
      [
        ['--path', 'x', '--seed', '1'],
        "--path wants the path a failure printed (numbers separated by ':'), got 'x'",
      ],
      [
        ['--seed', '1', '--path', '3:1', '--workers', '2'],
        '--path replays one history in one process; it does not go with --shard or --workers',
      ],
      [
        ['--seed', '1', '--path', '3:1', '--minutes', '1'],
        '--path replays one history; it does not go with --minutes',
      ],
      [
        ['--shard', '1/2', '--workers', '2'],
        '--shard runs one part of the work in one process; it does not go with --workers',
      ],
      [['--pairs'], '--pairs goes with --exhaustive'],
      [['--db', 'disk'], "--db wants memory or sqljs, got 'disk'"],
    ];
    for (const [args, message] of cases) {
      const io = bufferIo();
      expect(await main(['sim', '--workers', '2', ...args], io), args.join(' ')).toBe(2);
      expect(io.errors, args.join(' ')).toEqual([`image-keeper: USAGE: ${message}`]);
    }
  });

  it('--shard is 1-based like vitest: 1/2 and 2/2 are the two halves', () => {
    expect(parseSimOptions([], { shard: '1/2' }).shard).toEqual({ index: 0, count: 2 });
    expect(parseSimOptions([], { shard: '2/2' }).shard).toEqual({ index: 1, count: 2 });
    expect(parseSimOptions([], { shard: '1/1' }).workers).toBe(1);
  });

  it('--save-failures must be a folder that can be made: checked before any run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-save-'));
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const io = bufferIo();
    expect(
      await main(['sim', '--runs', '5', '--seed', '1', '--workers', '2', '--save-failures', file], io),
    ).toBe(2);
    expect(io.errors).toEqual([`image-keeper: USAGE: --save-failures ${file}: exists and is not a folder`]);
    const below = bufferIo();
    expect(
      await main(['sim', '--runs', '5', '--seed', '1', '--save-failures', join(file, 'sub')], below),
    ).toBe(2);
    expect(below.errors).toEqual([
      `image-keeper: USAGE: --save-failures ${join(file, 'sub')}: ${file} is not a folder`,
    ]);
  });

  it('--json includes the seed', async () => {
    const io = bufferIo();
    expect(await main(['sim', '--runs', '3', '--seed', '42', '--workers', '1', '--json'], io)).toBe(0);
    expect(JSON.parse(io.lines.at(-1) ?? '{}')).toMatchObject({ seed: 42, histories: 3 });
  });
});

describe('sim with several workers', () => {
  it('a bad value fails once, before any worker starts', async () => {
    const { code, stdout, stderr } = await cli(['sim', '--runs', '-1', '--workers', '3']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe("image-keeper: USAGE: --runs wants a whole number of at least 1, got '-1'\n");
  }, 30_000);
});
