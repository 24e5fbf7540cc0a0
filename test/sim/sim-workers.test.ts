import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../../bin/image-keeper', import.meta.url));

/** Runs bin/image-keeper as a child: workers are forked from the real entry point. */
async function sim(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(CLI, ['sim', ...args], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The report without its last line (`time: ... on N workers, ... histories/s`). */
function withoutTiming(report: string): string {
  return report
    .split('\n')
    .filter((line) => !line.startsWith('time: '))
    .join('\n');
}

describe('sim --workers', () => {
  const cases: { args: string[]; violations: number | 'some' }[] = [
    // Every basic scenario fails as written: each failure once, from the shard owning crash index 0.
    { args: ['scenarios/basics', '--exhaustive', '--mutant', 'row-before-engine-delete'], violations: 13 },
    // Failures at cuts: each shard stops at its own first one; the merged report is still one process's.
    { args: ['scenarios/basics', '--exhaustive', '--mutant', 'skip-startup-cleanup'], violations: 'some' },
    // Random histories: batches up to the first failing one.
    {
      args: [
        '--runs',
        '600',
        '--mutant',
        'kill-before-ready',
        '--save-failures',
        mkdtempSync(join(tmpdir(), 'sim-w-')),
      ],
      violations: 1,
    },
  ];
  for (const { args, violations } of cases) {
    it(`${args.slice(0, 4).join(' ')}: --workers 2 prints the report of --workers 1 (violations, replay lines, counts)`, async () => {
      const [one, two] = await Promise.all(
        ['1', '2'].map((w) => sim([...args, '--seed', '4', '--workers', w])),
      );
      expect(one?.stderr).toBe('');
      expect(two?.stderr).toBe('');
      expect(one?.code).toBe(1);
      expect(two?.code).toBe(1);
      expect(withoutTiming(two?.stdout ?? '')).toBe(withoutTiming(one?.stdout ?? ''));
      const count = Number(/^violations: (\d+)$/m.exec(one?.stdout ?? '')?.[1]);
      if (violations === 'some') expect(count).toBeGreaterThan(0);
      else expect(count).toBe(violations);
      expect(two?.stdout).toMatch(/^time: .* on 2 workers/m);
    });
  }

  it('saves only the failures it reports: another worker failing in a later batch leaves no file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-w-'));
    const two = await sim([
      '--runs',
      '1000',
      '--seed',
      '4',
      '--mutant',
      'kill-before-ready',
      '--save-failures',
      dir,
      '--workers',
      '2',
    ]);
    expect(two.code).toBe(1);
    const reported = [...two.stdout.matchAll(/image-keeper run (\S+\.yaml)/g)].map((m) =>
      m[1]?.split('/').pop(),
    );
    expect(reported.length).toBeGreaterThan(0);
    expect(readdirSync(dir).sort()).toEqual(reported.sort());
  });
});
