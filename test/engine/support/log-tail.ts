import { readFileSync } from 'node:fs';

/** The last `lines` lines of a log file, for error messages ("(no log)" if it cannot be read). */
export function tailFile(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
