import { createHash } from 'node:crypto';

/**
 * Scenario symbols and the sha256 values derived from them. Three kinds, each hashed with its own
 * prefix so no value can be derived from two kinds: an image symbol's manifest digest, an image-ID
 * symbol's config digest (the engine image ID), and a layer name's digest.
 */

export const SHA256 = /^sha256:[0-9a-f]{64}$/;
const SHA256_ANYWHERE = /sha256:[0-9a-f]{64}/g;

/** Starts with a letter or `_` so YAML reads it as a string and it can never be a number or a reference. */
const SYMBOL = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** Plain scalars YAML 1.2 would not read as strings. */
const RESERVED = new Set(['null', 'true', 'false']);

export function isSymbol(text: string): boolean {
  return SYMBOL.test(text) && !RESERVED.has(text.toLowerCase());
}

export function isSha256(text: string): boolean {
  return SHA256.test(text);
}

function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

/** Manifest digest of image symbol `s`: sha256("manifest:" + s). */
export function manifestDigestOf(symbol: string): string {
  return sha256(`manifest:${symbol}`);
}

/** Engine image ID of image-ID symbol `s`: sha256("config:" + s). */
export function configIdOf(symbol: string): string {
  return sha256(`config:${symbol}`);
}

/** Digest of layer name `s`: sha256("layer:" + s). */
export function layerDigestOf(name: string): string {
  return sha256(`layer:${name}`);
}

/** Every `sha256:<hex>` inside the strings of a plain value, in first-seen order. */
export function sha256Values(value: unknown): string[] {
  const found = new Set<string>();
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      for (const match of v.matchAll(SHA256_ANYWHERE)) found.add(match[0]);
    } else if (Array.isArray(v)) {
      for (const item of v) walk(item);
    } else if (typeof v === 'object' && v !== null) {
      for (const item of Object.values(v)) walk(item);
    }
  };
  walk(value);
  return [...found];
}

/**
 * The symbol table of a compiled scenario: each sha256 value the content uses that one of the file's
 * symbols derives. Only used values, so a scenario written back from its content alone gets the same table.
 */
export function symbolTable(content: unknown, derived: ReadonlyMap<string, string>): Record<string, string> {
  const table: Record<string, string> = {};
  for (const value of sha256Values(content)) {
    const symbol = derived.get(value);
    if (symbol !== undefined) table[value] = symbol;
  }
  return table;
}
