import { readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';

import { KeeperError, isKeeperError } from '../../core/errors.js';
import type { CompiledScenario } from './compiled-scenario.js';
import { compileScenario } from './compile-scenario.js';

const SCENARIO_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** Folders of target-state files that scenarios reference with `file:`; they are not scenarios. */
const SKIPPED_FOLDERS = new Set(['targets', 'node_modules']);

/** Loads one scenario file (YAML, or JSON with the same schema). Throws INVALID_SCENARIO. */
export async function loadScenario(path: string): Promise<CompiledScenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeeperError(
      'INVALID_SCENARIO',
      `${path}:1:1: cannot read scenario: ${(error as Error).message}`,
      {
        cause: error,
        details: { file: path },
      },
    );
  }
  return loadScenarioText(text, path, dirname(path));
}

/**
 * Compiles scenario text. `fileLabel` names it in messages and in the result; `file:` targets are
 * read relative to `baseDir` (synchronously, so this stays usable from synchronous properties).
 */
export function loadScenarioText(text: string, fileLabel: string, baseDir: string): CompiledScenario {
  return compileScenario(text, { file: fileLabel, baseDir, readTextFile: (p) => readFileSync(p, 'utf8') });
}

/**
 * A file, or every *.yaml/*.yml/*.json under a folder (recursively, sorted by path, skipping `targets/`
 * folders). All invalid files are reported together in one INVALID_SCENARIO error.
 */
export async function loadScenarios(pathOrFolder: string): Promise<CompiledScenario[]> {
  const info = await stat(pathOrFolder).catch((error: NodeJS.ErrnoException) => {
    throw unreadable(pathOrFolder, error);
  });
  const files = info.isDirectory() ? (await scenarioFiles(pathOrFolder)).sort() : [pathOrFolder];
  if (files.length === 0) {
    throw new KeeperError(
      'INVALID_SCENARIO',
      `${pathOrFolder}: no scenario files (*.yaml, *.yml, *.json) in this folder`,
      {
        details: { file: pathOrFolder },
      },
    );
  }
  const loaded: CompiledScenario[] = [];
  const failures: string[] = [];
  for (const file of files) {
    try {
      loaded.push(await loadScenario(file));
    } catch (error) {
      if (!isKeeperError(error, 'INVALID_SCENARIO')) throw error;
      failures.push(error.message);
    }
  }
  if (failures.length > 0) {
    throw new KeeperError('INVALID_SCENARIO', failures.join('\n'), {
      details: { files: files.length, failed: failures.length },
    });
  }
  return loaded;
}

/** A path that cannot be read, as one line saying what happened. */
function unreadable(path: string, error: NodeJS.ErrnoException): KeeperError {
  const why: Record<string, string> = {
    ENOENT: 'no such scenario file or folder',
    ELOOP: 'too many levels of symbolic links (a symlink loop?)',
    EACCES: 'permission denied',
    ENOTDIR: 'a part of the path is not a folder',
    ENAMETOOLONG: 'the path is too long',
  };
  const message = why[error.code ?? ''] ?? `cannot read: ${error.message.replace(/\s*\n\s*/g, ' ')}`;
  return new KeeperError(
    'INVALID_SCENARIO',
    `${path}: ${message}${error.code !== undefined && why[error.code] !== undefined ? ` (${error.code})` : ''}`,
    {
      cause: error,
      details: { file: path },
    },
  );
}

async function scenarioFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    throw unreadable(folder, error);
  });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(folder, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_FOLDERS.has(entry.name) && !entry.name.startsWith('.'))
        files.push(...(await scenarioFiles(full)));
    } else if (entry.isFile() && SCENARIO_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
      files.push(full);
    }
  }
  return files;
}
