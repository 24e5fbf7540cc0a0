/**
 * A loopback HTTP proxy in front of the private registry that can misbehave on purpose: answer a
 * status (500, 401, 403, 404...) for manifests or blobs, or cut a blob body after some bytes. dockerd
 * treats 127.0.0.0/8 registries as insecure (plain http), so `127.0.0.1:<port>` works as a registry
 * host: images must be referenced through `proxy.host` for their traffic to pass here.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type ProxyTarget = 'manifest' | 'blob';

export type ProxyFault =
  /** Answer `status` (with a registry-style JSON error body) instead of forwarding. */
  | {
      readonly kind: 'status';
      readonly target: ProxyTarget;
      readonly status: number;
      readonly times?: number;
    }
  /** Forward a blob GET but destroy the connection after `afterBytes` bytes of its body. */
  | { readonly kind: 'cut'; readonly afterBytes: number; readonly times?: number }
  /** Forward a blob GET but stop sending after `afterBytes` bytes, keeping the connection open. */
  | { readonly kind: 'stall'; readonly afterBytes: number; readonly times?: number };

export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** What the proxy did: forwarded it, answered a fault status, or cut or stalled the body. */
  readonly action: 'forwarded' | 'status' | 'cut' | 'stall';
}

interface ArmedFault {
  readonly fault: ProxyFault;
  remaining: number;
}

const REGISTRY_ERROR_CODES: Readonly<Record<number, { code: string; message: string }>> = {
  401: { code: 'UNAUTHORIZED', message: 'authentication required' },
  403: { code: 'DENIED', message: 'requested access to the resource is denied' },
  404: { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' },
  429: { code: 'TOOMANYREQUESTS', message: 'too many requests' },
};

export class FlakyRegistryProxy {
  /** Every request seen, in order. */
  readonly requests: ProxiedRequest[] = [];
  private faults: ArmedFault[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** "127.0.0.1:PORT" of the proxy: use it as the registry part of references. */
    readonly host: string,
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1 (never another interface) and forwards to `upstream` ("127.0.0.1:PORT"). */
  static async start(upstream: string): Promise<FlakyRegistryProxy> {
    const [upstreamHost, upstreamPort] = splitHost(upstream);
    if (upstreamHost !== '127.0.0.1' && upstreamHost !== 'localhost') {
      throw new Error(`the flaky proxy only forwards to loopback, not ${upstream}`);
    }
    const ready: { proxy?: FlakyRegistryProxy } = {};
    const server = createServer((req, res) => {
      if (ready.proxy === undefined) throw new Error('unreachable: request before the proxy was ready');
      ready.proxy.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
    ready.proxy = new FlakyRegistryProxy(server, `127.0.0.1:${address.port}`, upstreamHost, upstreamPort);
    return ready.proxy;
  }

  /** `repository` rewritten to pass through this proxy (same path, same digest or tag). */
  through(reference: string): string {
    const slash = reference.indexOf('/');
    if (slash < 0) throw new Error(`reference ${reference} has no registry host`);
    return `${this.host}${reference.slice(slash)}`;
  }

  /** Arms a fault for the next `times` matching requests (default: every matching request). */
  inject(fault: ProxyFault): void {
    this.faults.push({ fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
  }

  clearFaults(): void {
    this.faults = [];
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    const method = req.method ?? 'GET';
    const target = targetOf(path);
    const status = this.takeStatus(target);
    if (status !== undefined) {
      this.answerStatus(res, method, path, status);
      return;
    }
    const upstream = request(
      {
        host: this.upstreamHost,
        port: this.upstreamPort,
        method,
        path,
        headers: { ...req.headers, host: `${this.upstreamHost}:${this.upstreamPort}` },
      },
      (upstreamRes) => this.relay(upstreamRes, res, method, path, target === 'blob' && method === 'GET'),
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  /**
   * Forwards the response. A blob body is watched for an armed cut or stall, which is spent only when
   * a body really reaches its byte count (small blobs such as configs pass untouched), and only once
   * per arming even when dockerd downloads several layers at the same time.
   */
  private relay(
    upstreamRes: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    isBlob: boolean,
  ): void {
    const status = upstreamRes.statusCode ?? 502;
    res.writeHead(status, upstreamRes.headers);
    const record = { method, path, status, action: 'forwarded' as ProxiedRequest['action'] };
    this.requests.push(record);
    if (!isBlob) {
      upstreamRes.pipe(res);
      return;
    }
    let sent = 0;
    let cutOff = false;
    upstreamRes.on('data', (chunk: Buffer) => {
      if (cutOff) return;
      const armed = this.bodyFault(sent + chunk.length);
      if (armed === undefined) {
        sent += chunk.length;
        res.write(chunk);
        return;
      }
      const { fault } = armed;
      armed.remaining -= 1;
      cutOff = true;
      record.action = fault.kind === 'cut' ? 'cut' : 'stall';
      res.write(chunk.subarray(0, Math.max(0, fault.afterBytes - sent)));
      sent = fault.afterBytes;
      upstreamRes.destroy();
      // A cut drops the connection mid-body (the client sees unexpected EOF); a stall keeps it open
      // and silent until the client or stop() gives up.
      if (fault.kind === 'cut') setTimeout(() => res.destroy(), 20);
    });
    upstreamRes.on('end', () => {
      if (!cutOff) res.end();
    });
  }

  private answerStatus(res: ServerResponse, method: string, path: string, status: number): void {
    this.requests.push({ method, path, status, action: 'status' });
    const known = REGISTRY_ERROR_CODES[status] ?? { code: 'UNKNOWN', message: `injected ${status}` };
    const body = JSON.stringify({ errors: [{ code: known.code, message: known.message, detail: null }] });
    const headers: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'docker-distribution-api-version': 'registry/2.0',
      'content-length': Buffer.byteLength(body),
    };
    res.writeHead(status, headers);
    res.end(method === 'HEAD' ? undefined : body);
  }

  private takeStatus(target: ProxyTarget | undefined): number | undefined {
    if (target === undefined) return undefined;
    for (const armed of this.faults) {
      if (armed.remaining <= 0 || armed.fault.kind !== 'status' || armed.fault.target !== target) continue;
      armed.remaining -= 1;
      return armed.fault.status;
    }
    return undefined;
  }

  /** The armed cut or stall a blob body that has reached `bytes` bytes runs into, if any. */
  private bodyFault(
    bytes: number,
  ): (ArmedFault & { fault: Exclude<ProxyFault, { kind: 'status' }> }) | undefined {
    for (const armed of this.faults) {
      const { fault } = armed;
      if (armed.remaining > 0 && fault.kind !== 'status' && bytes > fault.afterBytes) {
        return armed as ArmedFault & { fault: typeof fault };
      }
    }
    return undefined;
  }
}

function targetOf(path: string): ProxyTarget | undefined {
  if (/^\/v2\/.+\/manifests\//.test(path)) return 'manifest';
  if (/^\/v2\/.+\/blobs\/sha256:/.test(path)) return 'blob';
  return undefined;
}

function splitHost(hostPort: string): [string, number] {
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) throw new Error(`expected host:port, got ${hostPort}`);
  return [hostPort.slice(0, colon), port];
}
