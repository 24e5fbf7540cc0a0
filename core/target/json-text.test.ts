import { describe, expect, it } from 'vitest';

import { isKeeperError } from '../errors.js';
import { lineColOf, parseJsonText } from './json-text.js';

function syntaxError(text: string): string {
  try {
    parseJsonText(text, 't.json');
  } catch (error) {
    expect(isKeeperError(error, 'INVALID_TARGET')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected INVALID_TARGET');
}

describe('parseJsonText', () => {
  it('parses JSON, a leading byte-order mark allowed', () => {
    expect(parseJsonText('{"apps": []}', 't.json')).toEqual({ apps: [] });
    expect(parseJsonText('\uFEFF{"a": [1, 2.5e3, true, null, "x\\u00e9"]}', 't.json')).toEqual({
      a: [1, 2500, true, null, 'xé'],
    });
  });

  it('names line and column of a syntax error, in one line', () => {
    expect(syntaxError('{\n  "apps": [\n    {"id": 1,, }\n  ]\n}\n')).toBe(
      't.json:3:14: not valid JSON: expected a double-quoted key, found ","',
    );
    expect(syntaxError('name: x\nsteps: [\n')).toBe(
      "t.json:1:1: not valid JSON: expected a value, found 'name'",
    );
    expect(syntaxError('{"apps": [\n')).toBe(
      't.json:2:1: not valid JSON: expected a value, found the end of the file',
    );
    expect(syntaxError('{"a": tru}')).toBe("t.json:1:7: not valid JSON: expected a value, found 'tru'");
    expect(syntaxError('{"a": 1} x')).toBe(
      't.json:1:10: not valid JSON: unexpected "x" after the JSON value',
    );
    expect(syntaxError('{"a": "b\nc"}')).toBe(
      't.json:1:9: not valid JSON: control character in a string (escape it)',
    );
    expect(syntaxError('{"a": "b')).toBe('t.json:1:7: not valid JSON: unterminated string');
    expect(syntaxError('  \n')).toBe(
      't.json:2:1: not valid JSON: the file is empty (expected a JSON object)',
    );
    expect(syntaxError('{"a": 01}')).toBe("t.json:1:8: not valid JSON: expected ',' or '}', found \"1\"");
    for (const bad of ['{', '[1,]', '{"a" 1}', '"\\x"', '-', '{"a":1,}', '['.repeat(100_000)]) {
      expect(syntaxError(bad)).not.toContain('\n');
    }
  });

  it('counts lines and columns from 1', () => {
    expect(lineColOf('ab\ncd', 0)).toEqual({ line: 1, col: 1 });
    expect(lineColOf('ab\ncd', 4)).toEqual({ line: 2, col: 2 });
    expect(lineColOf('ab', 9)).toEqual({ line: 1, col: 3 });
  });
});
