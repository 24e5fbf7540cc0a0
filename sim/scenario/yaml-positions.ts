import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
} from 'yaml';

import type { JsonPath } from '../../core/target/json-path.js';

export interface SourcePosition {
  readonly line: number;
  readonly col: number;
}

export interface ParsedYaml {
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
}

/** Parses YAML (or JSON, which yaml also reads) keeping node ranges for error positions. */
export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  return { doc, lineCounter };
}

export function positionOf(parsed: ParsedYaml, offset: number): SourcePosition {
  const { line, col } = parsed.lineCounter.linePos(offset);
  return { line, col };
}

/**
 * Where a path points in the source: the deepest node the path reaches (a missing key points at its
 * map; a key that is itself the problem points at the key with `atKey`).
 */
export function positionOfPath(parsed: ParsedYaml, path: JsonPath, atKey = false): SourcePosition {
  let node: unknown = parsed.doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    node = resolveAlias(parsed.doc, node);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(segment));
      if (!pair) break;
      const last = i === path.length - 1;
      if (last && atKey) {
        offset = rangeStart(pair.key) ?? offset;
        break;
      }
      node = pair.value;
      // `key:` with no value has no value node; the key is the best place to point at.
      offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
      if (node === null) break;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      const start = rangeStart(node);
      if (start === undefined) break;
      offset = start;
    } else {
      break;
    }
  }
  return positionOf(parsed, offset);
}

/** The 1-based source line of the node at `path`, or undefined when there is none. */
export function lineOfPath(parsed: ParsedYaml, path: JsonPath): number | undefined {
  let node: unknown = parsed.doc.contents;
  for (const segment of path) {
    node = resolveAlias(parsed.doc, node);
    if (isMap(node)) node = node.items.find((p) => isPair(p) && keyText(p.key) === String(segment))?.value;
    else if (isSeq(node) && typeof segment === 'number') node = node.items[segment];
    else return undefined;
  }
  const start = rangeStart(node);
  return start === undefined ? undefined : positionOf(parsed, start).line;
}

function resolveAlias(doc: Document.Parsed, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}
