import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER_CLIENT_ENV, socketClient } from './docker-client.js';
import { DockerEngine } from './docker-engine.js';

/** An HTTP server answering like an engine, recording the paths asked. */
function fakeEngine(): { server: Server; hits: string[] } {
  const hits: string[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    hits.push(request.url ?? '');
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end('OK');
  });
  return { server, hits };
}

const listen = (server: Server, where: string | number): Promise<void> =>
  new Promise((resolve) => {
    if (typeof where === 'string') server.listen(where, resolve);
    else server.listen(where, '127.0.0.1', resolve);
  });

describe('socketClient', () => {
  let dir = '';
  const unix = fakeEngine();
  const tcp = fakeEngine();
  let socketPath = '';
  let tcpPort = 0;
  const saved = new Map<string, string | undefined>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ik-client-'));
    socketPath = join(dir, 'engine.sock');
    await listen(unix.server, socketPath);
    await listen(tcp.server, 0);
    tcpPort = (tcp.server.address() as AddressInfo).port;
    for (const key of DOCKER_CLIENT_ENV) saved.set(key, process.env[key]);
  });
  afterEach(() => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  afterAll(async () => {
    await new Promise((resolve) => unix.server.close(resolve));
    await new Promise((resolve) => tcp.server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['tcp', () => `tcp://127.0.0.1:${tcpPort}`],
    ['ssh', () => `ssh://nobody@127.0.0.1:${tcpPort}`],
    ['host:port', () => `127.0.0.1:${tcpPort}`],
  ])('ignores a %s DOCKER_HOST and its TLS settings: it talks to the socket only', async (_kind, host) => {
    process.env['DOCKER_HOST'] = host();
    process.env['DOCKER_TLS_VERIFY'] = '1';
    process.env['DOCKER_CERT_PATH'] = join(dir, 'no-such-certs'); // would make docker-modem throw
    process.env['DOCKER_CLIENT_TIMEOUT'] = '1';
    const before = unix.hits.length;
    const client = socketClient(socketPath, { timeoutMs: 5_000 });
    const modem = client.modem as unknown as { host?: string; socketPath?: string };
    expect(modem.host).toBeUndefined();
    expect(modem.socketPath).toBe(socketPath);
    expect(String(await client.ping())).toBe('OK');
    expect(unix.hits.slice(before)).toEqual(['/_ping']);
    expect(tcp.hits).toEqual([]);
    // The environment is left as the caller had it.
    expect(process.env['DOCKER_HOST']).toBe(host());
    expect(process.env['DOCKER_CERT_PATH']).toBe(join(dir, 'no-such-certs'));
  });

  it('the engine adapter goes through it too', async () => {
    process.env['DOCKER_HOST'] = `tcp://127.0.0.1:${tcpPort}`;
    const before = unix.hits.length;
    await new DockerEngine({ socketPath }).ping();
    expect(unix.hits.slice(before)).toEqual(['/_ping']);
    expect(tcp.hits).toEqual([]);
  });

  it('refuses a relative socket path', () => {
    expect(() => socketClient('docker.sock')).toThrow(/absolute path/);
  });

  it('is the only place in the project that builds a dockerode client', async () => {
    const root = join(import.meta.dirname, '..', '..');
    const offenders: string[] = [];
    for (const top of ['adapters', 'cli', 'core', 'scripts', 'sim', 'test']) {
      for (const file of await sourceFiles(join(root, top))) {
        const text = await readFile(file, 'utf8');
        const name = relative(root, file);
        if (
          name === join('adapters', 'docker', 'docker-client.ts') ||
          name === join('adapters', 'docker', 'docker-client.test.ts')
        )
          continue;
        if (/new\s+(Docker|Dockerode)\s*\(|new\s+\w*\.?Modem\s*\(/.test(text)) offenders.push(name);
      }
    }
    expect(offenders).toEqual([]);
  });
});

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(path)));
    else if (/\.(ts|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out;
}
