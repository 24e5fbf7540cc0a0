import { KeeperError } from '../errors.js';

/**
 * JSON text to a value, with a syntax error named by line and column. JSON.parse gives a position
 * only for some errors (and quotes the input, newlines included, for others), so on failure a small
 * scanner finds where the text stops being JSON and says what it expected there, in one line.
 */
export function parseJsonText(text: string, label: string): unknown {
  // A byte-order mark is not JSON, but editors write one; it says nothing about the content.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (error) {
    const { offset, message } = locateJsonError(body);
    const { line, col } = lineColOf(body, offset);
    throw new KeeperError('INVALID_TARGET', `${label}:${line}:${col}: not valid JSON: ${message}`, {
      cause: error,
      details: { label, line, col },
    });
  }
}

/** 1-based line and column of a character offset. */
export function lineColOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      start = i + 1;
    }
  }
  return { line, col: Math.min(offset, text.length) - start + 1 };
}

class JsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/** Where and why `text` is not JSON (RFC 8259); JSON.parse has already said that it is not. */
export function locateJsonError(text: string): { offset: number; message: string } {
  try {
    new Scanner(text).document();
  } catch (error) {
    if (error instanceof JsonSyntaxError) return { offset: error.offset, message: error.message };
    // Nesting deep enough to exhaust the stack: point at the start.
    return { offset: 0, message: 'nested too deeply to read' };
  }
  // The scanner accepted what JSON.parse refused (it should not happen): no better place than the end.
  return { offset: text.length, message: 'not valid JSON' };
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

class Scanner {
  private i = 0;
  constructor(private readonly text: string) {}

  document(): void {
    this.skip();
    if (this.i >= this.text.length) throw this.fail('the file is empty (expected a JSON object)');
    this.value();
    this.skip();
    if (this.i < this.text.length) throw this.fail(`unexpected ${this.describe()} after the JSON value`);
  }

  private value(): void {
    const c = this.text[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return;
      }
    }
    throw this.fail(`expected a value, found ${this.describe()}`);
  }

  private object(): void {
    this.i++;
    this.skip();
    if (this.text[this.i] === '}') {
      this.i++;
      return;
    }
    for (;;) {
      this.skip();
      if (this.text[this.i] !== '"')
        throw this.fail(`expected a double-quoted key, found ${this.describe()}`);
      this.string();
      this.skip();
      if (this.text[this.i] !== ':') throw this.fail(`expected ':' after the key, found ${this.describe()}`);
      this.i++;
      this.skip();
      this.value();
      this.skip();
      const c = this.text[this.i];
      if (c === '}') {
        this.i++;
        return;
      }
      if (c !== ',') throw this.fail(`expected ',' or '}', found ${this.describe()}`);
      this.i++;
    }
  }

  private array(): void {
    this.i++;
    this.skip();
    if (this.text[this.i] === ']') {
      this.i++;
      return;
    }
    for (;;) {
      this.skip();
      this.value();
      this.skip();
      const c = this.text[this.i];
      if (c === ']') {
        this.i++;
        return;
      }
      if (c !== ',') throw this.fail(`expected ',' or ']', found ${this.describe()}`);
      this.i++;
    }
  }

  private string(): void {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.text[this.i];
      if (c === undefined) throw new JsonSyntaxError(start, 'unterminated string');
      if (c === '"') {
        this.i++;
        return;
      }
      if (c < ' ') throw this.fail('control character in a string (escape it)');
      if (c === '\\') {
        const e = this.text[this.i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.text.slice(this.i + 2, this.i + 6)))
            throw this.fail('bad \\u escape');
          this.i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) throw this.fail('bad escape in a string');
        this.i += 2;
        continue;
      }
      this.i++;
    }
  }

  private number(): void {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(
      this.text.slice(this.i, this.i + 400),
    );
    if (!match || match[0] === '-') throw this.fail(`expected a number, found ${this.describe()}`);
    this.i += match[0].length;
  }

  private skip(): void {
    while (this.i < this.text.length && WHITESPACE.has(this.text[this.i] ?? '')) this.i++;
  }

  private describe(): string {
    const c = this.text[this.i];
    if (c === undefined) return 'the end of the file';
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.i, this.i + 40))?.[0];
    if (word !== undefined && word.length > 1) return `'${word}'`;
    return JSON.stringify(c);
  }

  private fail(message: string): JsonSyntaxError {
    return new JsonSyntaxError(this.i, message);
  }
}
