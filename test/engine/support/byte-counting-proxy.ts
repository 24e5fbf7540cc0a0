/**
 * A loopback HTTP proxy in front of the private registry that counts the bytes it serves: response
 * bodies by kind (layer and config blobs, manifests, anything else) and per blob digest. It can also
 * pace blob bodies (a slow link), so a pull lasts long enough to be interrupted in the middle. Images
 * must be referenced through `proxy.host` (dockerd treats 127.0.0.0/8 registries as plain-http) for
 * their traffic to pass, and be counted, here.
 */
import { createServer, request, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ServedBytes {
  readonly blobs: number;
  readonly manifests: number;
  readonly other: number;
  readonly requests: number;
  /** Body bytes per blob digest (a resumed blob adds up over its requests). */
  readonly perBlob: ReadonlyMap<string, number>;
}

export class ByteCountingProxy {
  private blobs = 0;
  private manifests = 0;
  private other = 0;
  private requests = 0;
  private perBlob = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  /** Blob bodies are sent at most this fast (bytes per second); undefined: as fast as they come. */
  pace: number | undefined;

  private constructor(
    private readonly server: Server,
    /** "127.0.0.1:PORT" of the proxy: use it as the registry part of references. */
    readonly host: string,
  ) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1 only and forwards to `upstream`, which must be loopback too ("127.0.0.1:PORT"). */
  static async start(upstream: string): Promise<ByteCountingProxy> {
    const colon = upstream.lastIndexOf(':');
    const upstreamHost = upstream.slice(0, colon);
    const upstreamPort = Number(upstream.slice(colon + 1));
    if (upstreamHost !== '127.0.0.1' || !Number.isInteger(upstreamPort)) {
      throw new Error(`the byte-counting proxy only forwards to 127.0.0.1:PORT, not ${upstream}`);
    }
    const holder: { proxy?: ByteCountingProxy } = {};
    const server = createServer((req, res) => {
      const path = req.url ?? '/';
      const upstreamRequest = request(
        {
          host: upstreamHost,
          port: upstreamPort,
          method: req.method,
          path,
          headers: { ...req.headers, host: upstream },
        },
        (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          // A client that goes away (dockerd killed, pull cancelled) ends the upstream transfer too.
          res.once('close', () => upstreamRes.destroy());
          const started = Date.now();
          let sent = 0;
          upstreamRes.on('data', (chunk: Buffer) => {
            holder.proxy?.count(path, chunk.length);
            sent += chunk.length;
            res.write(chunk);
            const pace = isBlob(path) ? holder.proxy?.pace : undefined;
            if (pace === undefined) return;
            const aheadMs = (sent / pace) * 1000 - (Date.now() - started);
            if (aheadMs <= 0) return;
            upstreamRes.pause();
            setTimeout(() => upstreamRes.resume(), aheadMs);
          });
          upstreamRes.once('end', () => res.end());
        },
      );
      holder.proxy?.countRequest();
      upstreamRequest.on('error', () => res.destroy());
      req.pipe(upstreamRequest);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
    holder.proxy = new ByteCountingProxy(server, `127.0.0.1:${address.port}`);
    return holder.proxy;
  }

  /** `reference` with its registry host replaced by the proxy's. */
  through(reference: string): string {
    const slash = reference.indexOf('/');
    if (slash < 0) throw new Error(`reference ${reference} has no registry host`);
    return `${this.host}${reference.slice(slash)}`;
  }

  served(): ServedBytes {
    return {
      blobs: this.blobs,
      manifests: this.manifests,
      other: this.other,
      requests: this.requests,
      perBlob: new Map(this.perBlob),
    };
  }

  reset(): void {
    this.blobs = 0;
    this.manifests = 0;
    this.other = 0;
    this.requests = 0;
    this.perBlob = new Map();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private countRequest(): void {
    this.requests += 1;
  }

  private count(path: string, bytes: number): void {
    const blob = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})/.exec(path)?.[1];
    if (blob !== undefined) {
      this.blobs += bytes;
      this.perBlob.set(blob, (this.perBlob.get(blob) ?? 0) + bytes);
    } else if (/^\/v2\/.+\/manifests\//.test(path)) {
      this.manifests += bytes;
    } else {
      this.other += bytes;
    }
  }
}

function isBlob(path: string): boolean {
  return /^\/v2\/.+\/blobs\/sha256:/.test(path);
}
