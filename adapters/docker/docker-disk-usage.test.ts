import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerEngine } from './docker-engine.js';

const hex = (text: string): string => `sha256:${createHash('sha256').update(text).digest('hex')}`;

interface FakeImage {
  readonly id: string;
  readonly diffIds: readonly string[];
  /** Newest first, as the engine answers. */
  readonly history: readonly number[];
}

/**
 * diskUsage against a scripted engine on a unix socket: which paths it asks, and how it meets engine
 * 20.10's 500 "a disk usage operation is already running".
 */
describe('DockerEngine.diskUsage', () => {
  let dir = '';
  let server: Server;
  let socketPath = '';
  let images: FakeImage[] = [];
  let dfBusy = 0;
  let asked: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ik-df-'));
    socketPath = join(dir, 'engine.sock');
    server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://engine');
      asked.push(url.pathname);
      const send = (status: number, body: unknown): void => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (url.pathname === '/images/json')
        return send(
          200,
          images.map((i) => ({ Id: i.id })),
        );
      if (url.pathname === '/system/df') {
        if (dfBusy > 0) {
          dfBusy--;
          return send(500, { message: 'a disk usage operation is already running' });
        }
        return send(200, { LayersSize: 4242 });
      }
      const match = /^\/images\/(.+)\/(json|history)$/.exec(url.pathname);
      const image = images.find((i) => i.id === decodeURIComponent(match?.[1] ?? ''));
      if (!match || !image) return send(404, { message: 'no such image' });
      if (match[2] === 'json')
        return send(200, { Id: image.id, RootFS: { Type: 'layers', Layers: image.diffIds } });
      return send(
        200,
        image.history.map((size) => ({ Id: '<missing>', Size: size })),
      );
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  beforeEach(() => {
    asked = [];
    dfBusy = 0;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const [a, b, c] = [hex('layer a'), hex('layer b'), hex('layer c')];

  it('sums each layer once from the image list and histories, never asking /system/df, and caches by image ID', async () => {
    images = [
      // base a (100) + b (20); an empty history entry (LABEL) of size 0 on top.
      { id: hex('one'), diffIds: [a, b], history: [0, 20, 100] },
      // the same base layer a, then c (7).
      { id: hex('two'), diffIds: [a, c], history: [7, 0, 100] },
      // c on its own at the bottom is another layer (other chain) than c above a.
      { id: hex('three'), diffIds: [c], history: [7] },
    ];
    const engine = new DockerEngine({ socketPath });
    expect(await engine.diskUsage()).toEqual({ images: 100 + 20 + 7 + 7, partial: 0 });
    expect(asked).not.toContain('/system/df');
    asked = [];
    expect(await engine.diskUsage()).toEqual({ images: 134, partial: 0 });
    expect(asked).toEqual(['/images/json']);
  });

  it('an image whose history hides a layer of 0 bytes falls back to /system/df, retrying "already running"', async () => {
    images = [{ id: hex('zero'), diffIds: [a, b], history: [0, 100] }];
    dfBusy = 2;
    const engine = new DockerEngine({ socketPath });
    expect(await engine.diskUsage()).toEqual({ images: 4242, partial: 0 });
    expect(asked.filter((p) => p === '/system/df')).toHaveLength(3);
  });

  it('a df that stays busy is ENGINE_UNAVAILABLE in the end', async () => {
    images = [{ id: hex('zero'), diffIds: [a, b], history: [0, 100] }];
    dfBusy = 100;
    const engine = new DockerEngine({ socketPath });
    await expect(engine.diskUsage()).rejects.toMatchObject({ code: 'ENGINE_UNAVAILABLE' });
    expect(asked.filter((p) => p === '/system/df')).toHaveLength(6);
  }, 15_000);
});
