/**
 * A private image registry: Debian's docker-registry (distribution 2.8) with a generated config,
 * no auth, deletes enabled, listening on 127.0.0.1 on a free port, storing blobs in a private dir.
 * dockerd treats 127.0.0.0/8 registries as insecure, so plain HTTP works without daemon.json.
 */
import { spawnDetachedDaemon } from './detached-daemon.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { findFreePort } from './free-port.js';
import { tailFile } from './log-tail.js';
import { removePrivateDir } from './private-dir.js';
import { isProcessAlive, readProcessCmdline, terminateProcess } from './process-control.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Everything needed to re-attach to the registry from another process (JSON-serialisable). */
export interface PrivateRegistryState {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly storageDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly pidFile: string;
}

export interface PrivateRegistryOptions {
  /** Directory the registry owns (created if missing, deleted by stop()). Must be inside a private dir. */
  readonly dir: string;
  readonly binary?: string;
  /** Fixed port; by default a free one is picked (and re-picked if another process grabs it first). */
  readonly port?: number;
  readonly startTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export class PrivateRegistry {
  readonly dir: string;
  /** "127.0.0.1:PORT", the registry part of image references. */
  readonly host: string;
  readonly port: number;
  readonly storageDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly pidFile: string;
  private readonly stopTimeoutMs: number;

  private constructor(state: PrivateRegistryState, stopTimeoutMs: number) {
    this.dir = state.dir;
    this.host = state.host;
    this.port = state.port;
    this.storageDir = state.storageDir;
    this.configFile = state.configFile;
    this.logFile = state.logFile;
    this.pidFile = state.pidFile;
    this.stopTimeoutMs = stopTimeoutMs;
  }

  /** Starts the registry and waits until `GET /v2/` answers 200. */
  static async start(options: PrivateRegistryOptions): Promise<PrivateRegistry> {
    const binary =
      options.binary ??
      (existsSync('/usr/bin/docker-registry') ? '/usr/bin/docker-registry' : 'docker-registry');
    const log = options.log ?? (() => undefined);
    mkdirSync(options.dir, { recursive: true });
    const attempts = options.port === undefined ? 3 : 1;
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      const port = options.port ?? (await findFreePort('127.0.0.1'));
      const registry = new PrivateRegistry(
        {
          dir: options.dir,
          host: `127.0.0.1:${port}`,
          port,
          storageDir: join(options.dir, 'storage'),
          configFile: join(options.dir, 'config.yml'),
          logFile: join(options.dir, 'registry.log'),
          pidFile: join(options.dir, 'registry.pid'),
        },
        options.stopTimeoutMs ?? 10_000,
      );
      try {
        await registry.spawnAndWait(binary, options.startTimeoutMs ?? 30_000, log);
        return registry;
      } catch (error) {
        lastError = error as Error;
        log(`registry: attempt ${attempt} on port ${port} failed: ${lastError.message}`);
      }
    }
    throw lastError ?? new Error('registry did not start');
  }

  static attach(state: PrivateRegistryState, options: { stopTimeoutMs?: number } = {}): PrivateRegistry {
    return new PrivateRegistry(state, options.stopTimeoutMs ?? 10_000);
  }

  get state(): PrivateRegistryState {
    return {
      dir: this.dir,
      host: this.host,
      port: this.port,
      storageDir: this.storageDir,
      configFile: this.configFile,
      logFile: this.logFile,
      pidFile: this.pidFile,
    };
  }

  /** "http://127.0.0.1:PORT" */
  get url(): string {
    return `http://${this.host}`;
  }

  /** PID of the running registry (from our pidfile, checked against its command line), if any. */
  get pid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return undefined;
      return readProcessCmdline(pid)?.includes(this.configFile) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** True if `GET /v2/` answers 200 right now. */
  async isReady(timeoutMs = 1_000): Promise<boolean> {
    try {
      const response = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(timeoutMs) });
      await response.arrayBuffer();
      return response.status === 200;
    } catch {
      return false;
    }
  }

  /** SIGTERM (SIGKILL after the timeout) by the PID we spawned, then deletes the directory. */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid !== undefined) await terminateProcess(pid, this.stopTimeoutMs);
    if (existsSync(this.dir)) removePrivateDir(this.dir);
  }

  private async spawnAndWait(
    binary: string,
    startTimeoutMs: number,
    log: (line: string) => void,
  ): Promise<void> {
    mkdirSync(this.storageDir, { recursive: true });
    writeFileSync(this.configFile, this.renderConfig());
    const daemon = spawnDetachedDaemon(binary, ['serve', this.configFile], this.logFile, registryEnv());
    const child = daemon.child;
    if (child.pid !== undefined) writeFileSync(this.pidFile, `${child.pid}\n`);

    const started = Date.now();
    const deadline = started + startTimeoutMs;
    for (;;) {
      const spawnError = daemon.spawnError();
      const exit = daemon.exit();
      if (spawnError) throw new Error(`could not spawn ${binary}: ${spawnError.message}`);
      if (exit) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
        throw new Error(
          `docker-registry ${how} during start-up; log ${this.logFile}:\n${tailFile(this.logFile, 10)}`,
        );
      }
      if (await this.isReady()) break;
      if (Date.now() >= deadline) {
        if (child.pid !== undefined) await terminateProcess(child.pid, 2_000);
        throw new Error(
          `docker-registry did not answer GET ${this.url}/v2/ within ${startTimeoutMs} ms; log ${this.logFile}`,
        );
      }
      await sleep(100);
    }
    log(`registry: pid ${String(child.pid)} ready on ${this.host} in ${Date.now() - started} ms`);
  }

  private renderConfig(): string {
    // JSON is valid YAML; no auth section means no auth.
    const config = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: this.storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: this.host, secret: randomBytes(16).toString('hex') },
    };
    return `${JSON.stringify(config, null, 2)}\n`;
  }
}

/** The registry must read only our config file: drop REGISTRY_* overrides and proxies. */
function registryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const upper = key.toUpperCase();
    if (upper.startsWith('REGISTRY_') || upper.endsWith('_PROXY')) continue;
    env[key] = value;
  }
  return env;
}
