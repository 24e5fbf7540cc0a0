import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';

import { KeeperError } from '../../core/errors.js';
import type { PullProgress } from '../../core/ports/engine.js';
import { followPullStream, type PullStreamOptions } from './pull-stream.js';

const REF = 'registry.local/app/main@sha256:' + 'a'.repeat(64);
const line = (event: object): string => `${JSON.stringify(event)}\n`;
const layer = (id: string, status: string, progressDetail: object = {}): string =>
  line({ status, id, progressDetail });
const DONE = line({ status: `Status: Downloaded newer image for ${REF}` });

interface Harness {
  readonly stream: PassThrough;
  readonly progress: PullProgress[];
  readonly aborted: () => boolean;
  readonly result: Promise<unknown>;
}

function start(overrides: Partial<PullStreamOptions> = {}): Harness {
  const stream = new PassThrough();
  const progress: PullProgress[] = [];
  let signal: AbortSignal | undefined;
  const result = followPullStream({
    ref: REF,
    onProgress: (p) => progress.push(p),
    throttleMs: 0,
    idleTimeoutMs: 60_000,
    open: async (s) => {
      signal = s;
      return stream;
    },
    unavailable: (cause) => new KeeperError('ENGINE_UNAVAILABLE', String(cause)),
    ...overrides,
  }).catch((e: unknown) => e);
  return { stream, progress, aborted: () => signal?.aborted ?? false, result };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('followPullStream', () => {
  it('aggregates layers and bytes, and resolves on the final status with the digest', async () => {
    const h = start();
    h.stream.write(line({ status: 'Pulling from app/main', id: 'v1' }));
    h.stream.write(layer('l1', 'Pulling fs layer') + layer('l2', 'Already exists'));
    h.stream.write(layer('l1', 'Downloading', { current: 100, total: 400 }));
    h.stream.write(layer('l1', 'Downloading', { current: 400, total: 400 }));
    h.stream.write(layer('l1', 'Verifying Checksum') + layer('l1', 'Download complete'));
    h.stream.write(layer('l1', 'Extracting', { current: 9999, total: 9999 }) + layer('l1', 'Pull complete'));
    // A line split across chunks.
    const digest = line({ status: 'Digest: sha256:' + 'a'.repeat(64) });
    h.stream.write(digest.slice(0, 10));
    h.stream.end(digest.slice(10) + DONE);
    expect(await h.result).toEqual({
      finalStatus: `Status: Downloaded newer image for ${REF}`,
      digest: 'sha256:' + 'a'.repeat(64),
    });
    expect(h.progress.at(-1)).toEqual({
      ref: REF,
      layersDone: 2,
      layersTotal: 2,
      bytesDone: 400,
      bytesTotal: 400,
    });
    expect(h.progress.map((p) => p.layersDone)).toEqual([...h.progress.map((p) => p.layersDone)].sort());
  });

  it('an error event is a typed failure even though the stream then ends normally', async () => {
    const h = start();
    h.stream.write(layer('l1', 'Pulling fs layer'));
    h.stream.end(line({ errorDetail: { message: 'unauthorized' }, error: 'unauthorized' }));
    const error = (await h.result) as KeeperError;
    expect(error).toBeInstanceOf(KeeperError);
    expect(error).toMatchObject({ code: 'REGISTRY_ERROR', details: { status: 401, transient: false } });
  });

  it('a stream that ends without the final status is PULL_INCOMPLETE', async () => {
    const h = start();
    h.stream.end(layer('l1', 'Pulling fs layer') + layer('l1', 'Downloading', { current: 5, total: 10 }));
    expect(await h.result).toMatchObject({ code: 'PULL_INCOMPLETE', details: { transient: true } });
  });

  it('a stream that breaks is PULL_INCOMPLETE', async () => {
    const h = start();
    h.stream.write(layer('l1', 'Pulling fs layer'));
    await tick();
    h.stream.destroy(new Error('aborted'));
    expect(await h.result).toMatchObject({ code: 'PULL_INCOMPLETE' });
  });

  it('a malformed line is PULL_INCOMPLETE, not an uncaught exception', async () => {
    const h = start();
    h.stream.end('{"status": "Pulling fs\n');
    expect(await h.result).toMatchObject({ code: 'PULL_INCOMPLETE' });
  });

  it('an exception from onProgress aborts the request and is rethrown unchanged', async () => {
    const cut = new KeeperError('POWER_CUT', 'cut');
    const h = start({
      onProgress: () => {
        throw cut;
      },
    });
    h.stream.write(layer('l1', 'Pulling fs layer'));
    expect(await h.result).toBe(cut);
    expect(h.aborted()).toBe(true);
    // Later output is ignored.
    h.stream.end(DONE);
  });

  it('a throw while flushing throttled progress at the end is rethrown too', async () => {
    const cut = new KeeperError('POWER_CUT', 'cut');
    let calls = 0;
    const h = start({
      throttleMs: 60_000,
      onProgress: () => {
        calls++;
        if (calls === 2) throw cut;
      },
    });
    h.stream.write(layer('l1', 'Pulling fs layer'));
    h.stream.write(layer('l1', 'Downloading', { current: 1, total: 10 }));
    h.stream.end(DONE);
    expect(await h.result).toBe(cut);
  });

  it('silence longer than idleTimeoutMs cuts the pull: PULL_INCOMPLETE', async () => {
    const h = start({ idleTimeoutMs: 30 });
    h.stream.write(layer('l1', 'Pulling fs layer'));
    expect(await h.result).toMatchObject({
      code: 'PULL_INCOMPLETE',
      message: expect.stringContaining('30 ms'),
    });
    expect(h.aborted()).toBe(true);
  });

  it('an HTTP error before the stream opens is classified; a dead socket is ENGINE_UNAVAILABLE', async () => {
    const http = start({
      open: async () => {
        throw Object.assign(new Error('(HTTP code 404) unexpected - manifest unknown '), {
          statusCode: 404,
          json: { message: 'manifest for x not found: manifest unknown' },
        });
      },
    });
    expect(await http.result).toMatchObject({
      code: 'REGISTRY_ERROR',
      details: { status: 404, transient: false },
    });
    const dead = start({
      open: async () => {
        throw Object.assign(new Error('connect ENOENT /x.sock'), { code: 'ENOENT' });
      },
    });
    expect(await dead.result).toMatchObject({ code: 'ENGINE_UNAVAILABLE' });
  });
});
