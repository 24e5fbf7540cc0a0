import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** core/ decides, adapters translate: the core reaches I/O only through its ports. */
const FORBIDDEN =
  /^(dockerode|sql\.js|testcontainers|node:.*|fs|fs\/promises|child_process|path|os|net|http|https|crypto)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

function importsOf(text: string): string[] {
  return [
    ...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1] ?? m[2] ?? '');
}

describe('core purity', () => {
  const files = sourceFiles('core');

  it('finds the core sources', () => {
    expect(files.length).toBeGreaterThan(15);
  });

  it('no core module imports dockerode, sql.js, node built-ins or anything outside core (zod and fast-check-free)', () => {
    const offenders: string[] = [];
    for (const file of files) {
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        const escapes = spec.startsWith('.') && !join(file, '..', spec).startsWith('core');
        if (FORBIDDEN.test(spec) || escapes || (!spec.startsWith('.') && spec !== 'zod'))
          offenders.push(`${file}: ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('the import scanner itself sees forbidden imports', () => {
    expect(importsOf("import Docker from 'dockerode';\nimport { readFile } from 'node:fs';")).toEqual([
      'dockerode',
      'node:fs',
    ]);
  });
});
