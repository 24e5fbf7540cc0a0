import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

import initSqlJs from 'sql.js';
import type { SqlJsStatic } from 'sql.js';

let loading: Promise<SqlJsStatic> | undefined;

/**
 * The sql.js module, initialised once per process. The wasm is read from node_modules (never fetched):
 * an edge device may have no network when it starts. Reading it through node:fs rather than the
 * FileSystem port is deliberate: it is code, not state, and power cuts cannot tear it.
 */
export function loadSqlJs(): Promise<SqlJsStatic> {
  loading ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasm = await readFile(require.resolve('sql.js/dist/sql-wasm.wasm'));
    const wasmBinary = wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength) as ArrayBuffer;
    return initSqlJs({ wasmBinary });
  })();
  // A failed load is not cached, so a later open can retry (e.g. after a transient EMFILE).
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}
