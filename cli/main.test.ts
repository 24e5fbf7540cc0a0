import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bufferIo } from './cli-io.js';
import { main } from './main.js';

describe('the command line', () => {
  it('every command has --help and exits 0 with it', async () => {
    for (const command of ['apply', 'status', 'cleanup', 'capture', 'run', 'sim']) {
      const io = bufferIo();
      expect(await main([command, '--help'], io), command).toBe(0);
      expect(io.lines.join('\n'), command).toMatch(new RegExp(`^Usage: image-keeper ${command} `));
    }
  });

  it('device commands document --db and --engine, apply its target and recovery options', async () => {
    for (const command of ['apply', 'status', 'cleanup', 'capture']) {
      const io = bufferIo();
      await main([command, '--help'], io);
      const help = io.lines.join('\n');
      expect(help, command).toContain('--db <path>');
      expect(help, command).toContain('--engine <url>');
      expect(help, command).toContain('there is no other default');
    }
    const io = bufferIo();
    await main(['apply', '--help'], io);
    const help = io.lines.join('\n').replace(/\s+/g, ' ');
    for (const option of [
      '[target]',
      '--recover-db',
      '--pull-timeout <seconds>',
      '--json',
      'without it, the persisted target',
    ])
      expect(help).toContain(option);
    const cleanup = bufferIo();
    await main(['cleanup', '--help'], cleanup);
    expect(cleanup.lines.join('\n')).toContain('--dry-run');
  });

  it('bad usage exits 2 with one line in the same form as every other error', async () => {
    const missing = bufferIo();
    expect(await main(['capture'], missing)).toBe(2);
    expect(missing.errors).toEqual(["image-keeper: USAGE: missing required argument 'out'"]);
    const unknown = bufferIo();
    expect(await main(['status', '--colour'], unknown)).toBe(2);
    expect(unknown.errors).toEqual(["image-keeper: USAGE: unknown option '--colour'"]);
    const suggested = bufferIo();
    expect(await main(['sim', '--exhaustiv'], suggested)).toBe(2);
    expect(suggested.errors).toEqual([
      "image-keeper: USAGE: unknown option '--exhaustiv' (Did you mean --exhaustive?)",
    ]);
    const command = bufferIo();
    expect(await main(['sweep'], command)).toBe(2);
    expect(command.errors).toEqual(["image-keeper: USAGE: unknown command 'sweep'"]);
  });

  it('an error is one line even when what it quotes holds a newline', async () => {
    const io = bufferIo();
    expect(await main(['apply', '/nonexistent/a\nb.json', '--engine', 'unix:///nonexistent.sock'], io)).toBe(
      2,
    );
    expect(io.errors).toHaveLength(1);
    expect(io.errors[0]).toMatch(
      /^image-keeper: INVALID_TARGET: \/nonexistent\/a b\.json: cannot read the target file: ENOENT/,
    );
  });

  it('--version prints the package version', async () => {
    const io = bufferIo();
    expect(await main(['--version'], io)).toBe(0);
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(io.lines).toEqual([version]);
  });
});
