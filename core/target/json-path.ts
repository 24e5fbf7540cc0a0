import type { z } from 'zod';

import { KeeperError } from '../errors.js';

/** A location inside a parsed JSON or YAML value: object keys and array indices. */
export type JsonPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `steps[2].power-cut.at`, `apps["0f3c..."].releases`; the root is `(root)`. */
export function formatJsonPath(path: JsonPath): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

export interface PathProblem {
  readonly path: JsonPath;
  readonly message: string;
  /** True when `path` ends with a key that should be pointed at itself (an unknown key), not its value. */
  readonly atKey: boolean;
}

/**
 * One problem per zod issue, worded for people: unknown keys name the key (one problem each) and a
 * missing key says "missing" rather than "expected string, received undefined". Needs issues parsed
 * with `reportInput: true`.
 */
export function describeZodIssue(issue: z.core.$ZodIssue): PathProblem[] {
  const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...path, key], message: `unknown key '${key}'`, atKey: true }));
  }
  if (issue.code === 'invalid_type' && issue.input === undefined && path.length > 0) {
    const key = path[path.length - 1];
    if (typeof key === 'string') return [{ path, message: `missing required key '${key}'`, atKey: false }];
  }
  return [{ path, message: lowerFirst(issue.message), atKey: false }];
}

function lowerFirst(text: string): string {
  return text.length > 0 ? text.charAt(0).toLowerCase() + text.slice(1) : text;
}

/** The one-line INVALID_TARGET error: `<label>: <what is wrong> (at <json path>)`. */
export function invalidTarget(label: string, path: JsonPath, message: string, cause?: unknown): KeeperError {
  return new KeeperError('INVALID_TARGET', `${label}: ${message} (at ${formatJsonPath(path)})`, {
    details: { label, path: [...path] },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The first zod issue as one INVALID_TARGET line, counting the others. */
export function targetSchemaError(label: string, base: JsonPath, error: z.ZodError): KeeperError {
  const problems = error.issues.flatMap(describeZodIssue);
  const first = problems[0] ?? { path: [], message: 'invalid target' };
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return invalidTarget(label, [...base, ...first.path], `${first.message}${more}`);
}
