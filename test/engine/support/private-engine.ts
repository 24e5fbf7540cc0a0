/**
 * A private dockerd for the engine tests: its own --data-root, --exec-root, unix socket, pidfile
 * and (empty) daemon.json, no bridge, no iptables, no ip forwarding. It never touches the
 * machine-wide engine. The process is tracked by the PID we spawned and by its pidfile, so a
 * dockerd restarted from a test worker can still be stopped by the globalSetup teardown.
 */
import { spawnSync } from 'node:child_process';
import { spawnDetachedDaemon } from './detached-daemon.js';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { socketClient } from '../../../adapters/docker/docker-client.js';
import { unmountAllUnder } from './mounts.js';
import { tailFile } from './log-tail.js';
import { removePrivateDir } from './private-dir.js';
import { assertPrivateEngineAnswers, assertPrivateSocketPath } from './private-socket.js';
import {
  findProcessesMentioning,
  isProcessAlive,
  readProcessCmdline,
  signalProcess,
  terminateProcess,
  waitForProcessExit,
} from './process-control.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Storage drivers tried in order; IMAGE_KEEPER_STORAGE_DRIVER (comma-separated) overrides. */
export const DEFAULT_STORAGE_DRIVERS: readonly string[] = ['overlay2', 'vfs'];

/** Everything needed to re-attach to the engine from another process (JSON-serialisable). */
export interface PrivateEngineState {
  readonly dir: string;
  readonly socketPath: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly configFile: string;
  readonly dockerdPath: string;
  readonly storageDriver: string;
  readonly args: readonly string[];
}

export interface PrivateEngineOptions {
  /** Directory the engine owns (created if missing, deleted by stop()). Must be inside a private dir. */
  readonly dir: string;
  readonly dockerdPath?: string;
  readonly storageDrivers?: readonly string[];
  /** How long to wait for ping() after spawning (default 60 s). */
  readonly startTimeoutMs?: number;
  /** How long SIGTERM may take before SIGKILL (default 20 s). */
  readonly stopTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

interface Timeouts {
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
}

class DaemonStartError extends Error {
  constructor(
    message: string,
    readonly exitedEarly: boolean,
  ) {
    super(message);
    this.name = 'DaemonStartError';
  }
}

export class PrivateEngine {
  readonly dir: string;
  readonly socketPath: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly configFile: string;
  readonly dockerdPath: string;
  private driver: string;
  private args: readonly string[];
  private readonly timeouts: Timeouts;
  private readonly log: (line: string) => void;

  private constructor(
    state: Omit<PrivateEngineState, 'args' | 'storageDriver'> & Partial<PrivateEngineState>,
    timeouts: Timeouts,
    log: (line: string) => void,
  ) {
    this.dir = state.dir;
    this.socketPath = state.socketPath;
    this.dataRoot = state.dataRoot;
    this.execRoot = state.execRoot;
    this.pidFile = state.pidFile;
    this.logFile = state.logFile;
    this.configFile = state.configFile;
    this.dockerdPath = state.dockerdPath;
    this.driver = state.storageDriver ?? '';
    this.args = state.args ?? [];
    this.timeouts = timeouts;
    this.log = log;
    assertPrivateSocketPath(this.socketPath);
    if (dirname(this.socketPath) !== this.dir)
      throw new Error(`the private engine's socket ${this.socketPath} must be in its own dir ${this.dir}`);
  }

  /**
   * Spawns dockerd and waits until it answers ping(). Tries each storage driver in turn when the
   * daemon exits during start-up (e.g. overlay2 unsupported), wiping the data-root in between.
   */
  static async start(options: PrivateEngineOptions): Promise<PrivateEngine> {
    const dir = options.dir;
    mkdirSync(dir, { recursive: true });
    const engine = new PrivateEngine(
      {
        dir,
        socketPath: join(dir, 'docker.sock'),
        dataRoot: join(dir, 'data'),
        execRoot: join(dir, 'exec'),
        pidFile: join(dir, 'docker.pid'),
        logFile: join(dir, 'dockerd.log'),
        configFile: join(dir, 'daemon.json'),
        dockerdPath:
          options.dockerdPath ?? (existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd'),
      },
      { startTimeoutMs: options.startTimeoutMs ?? 60_000, stopTimeoutMs: options.stopTimeoutMs ?? 20_000 },
      options.log ?? (() => undefined),
    );
    // An empty config file keeps /etc/docker/daemon.json (mirrors, hosts, data-root...) out of it.
    writeFileSync(engine.configFile, '{}\n');
    const fromEnv = process.env['IMAGE_KEEPER_STORAGE_DRIVER']
      ?.split(',')
      .map((d) => d.trim())
      .filter(Boolean);
    const drivers =
      options.storageDrivers ?? (fromEnv && fromEnv.length > 0 ? fromEnv : DEFAULT_STORAGE_DRIVERS);
    const failures: string[] = [];
    for (const driver of drivers) {
      engine.driver = driver;
      engine.args = engine.buildArgs(driver);
      try {
        await engine.spawnAndWait();
        if (failures.length > 0)
          engine.log(`dockerd: using storage driver ${driver} after: ${failures.join('; ')}`);
        return engine;
      } catch (error) {
        if (!(error instanceof DaemonStartError) || !error.exitedEarly) throw error;
        failures.push(`${driver}: ${error.message}`);
        engine.log(`dockerd: storage driver ${driver} failed, trying the next one (${error.message})`);
        unmountAllUnder(engine.dataRoot);
        rmSync(engine.dataRoot, { recursive: true, force: true });
        rmSync(engine.execRoot, { recursive: true, force: true });
      }
    }
    throw new Error(
      `private dockerd did not start with any storage driver (${drivers.join(', ')}); see ${engine.logFile}\n` +
        `${failures.join('\n')}\nlast lines of the log:\n${tailFile(engine.logFile, 15)}`,
    );
  }

  /** A handle on an engine started elsewhere (e.g. by globalSetup, from a test worker). */
  static attach(
    state: PrivateEngineState,
    options: Omit<PrivateEngineOptions, 'dir' | 'dockerdPath' | 'storageDrivers'> = {},
  ): PrivateEngine {
    return new PrivateEngine(
      state,
      { startTimeoutMs: options.startTimeoutMs ?? 60_000, stopTimeoutMs: options.stopTimeoutMs ?? 20_000 },
      options.log ?? (() => undefined),
    );
  }

  get state(): PrivateEngineState {
    return {
      dir: this.dir,
      socketPath: this.socketPath,
      dataRoot: this.dataRoot,
      execRoot: this.execRoot,
      pidFile: this.pidFile,
      logFile: this.logFile,
      configFile: this.configFile,
      dockerdPath: this.dockerdPath,
      storageDriver: this.driver,
      args: this.args,
    };
  }

  get storageDriver(): string {
    return this.driver;
  }

  /** `unix://<socketPath>`, the value for DOCKER_HOST. */
  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  /** PID of the running dockerd (from its pidfile, checked against its command line), if any. */
  get pid(): number | undefined {
    let raw: string;
    try {
      raw = readFileSync(this.pidFile, 'utf8').trim();
    } catch {
      return undefined;
    }
    const pid = Number(raw);
    if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return undefined;
    return this.isOurDaemon(pid) ? pid : undefined;
  }

  /** A dockerode client bound to the private socket (never to DOCKER_HOST or a default). */
  client(timeoutMs?: number): Docker {
    return socketClient(this.socketPath, { timeoutMs });
  }

  async ping(timeoutMs = 2_000): Promise<boolean> {
    try {
      await this.client(timeoutMs).ping();
      return true;
    } catch {
      return false;
    }
  }

  /** SIGKILLs dockerd (like a crash or power cut); leaves data-root, mounts and pidfile as they are. */
  async kill9(): Promise<number> {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`kill9: private dockerd is not running (pidfile ${this.pidFile})`);
    const containerdPid = this.containerdPid();
    signalProcess(pid, 'SIGKILL');
    if (!(await waitForProcessExit(pid, 10_000))) throw new Error(`kill9: dockerd ${pid} survived SIGKILL`);
    // dockerd's managed containerd dies with it (parent-death signal); wait so a restart starts a fresh one.
    if (containerdPid !== undefined) await waitForProcessExit(containerdPid, 5_000);
    this.log(`dockerd: killed ${pid} with SIGKILL`);
    return pid;
  }

  /** Graceful SIGTERM (SIGKILL after the stop timeout) if running, then start again on the same data-root. */
  async restart(): Promise<void> {
    await this.shutdown();
    if (this.args.length === 0)
      throw new Error('restart: this engine was never started (no dockerd arguments)');
    await this.spawnAndWait();
  }

  /** Starts dockerd again if it does not answer (e.g. after kill9); no-op when it is up. */
  async ensureRunning(): Promise<void> {
    if (await this.ping()) return;
    await this.restart();
  }

  /** Stops dockerd (SIGTERM, then SIGKILL after the stop timeout) but keeps its directory. */
  async shutdown(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    const how = await terminateProcess(pid, this.timeouts.stopTimeoutMs);
    this.log(`dockerd: ${pid} stopped (${how})`);
  }

  /**
   * Stops everything and deletes the directory: running containers are removed, dockerd gets
   * SIGTERM (SIGKILL after the timeout), leftover containerd/shim processes of this engine are
   * killed by PID, mounts under the directory are unmounted, and the directory is removed.
   */
  async stop(): Promise<void> {
    if (!(await this.ping()) && findProcessesMentioning(this.dir).length > 0 && this.args.length > 0) {
      // Killed earlier with containers still running: a fresh dockerd reaps them and their mounts.
      try {
        await this.spawnAndWait();
      } catch (error) {
        this.log(`dockerd: restart for cleanup failed: ${(error as Error).message}`);
      }
    }
    if (await this.ping()) {
      try {
        // Only ever the socket this engine created, and only once it proves to be this dockerd.
        await assertPrivateEngineAnswers(this.socketPath, this.dataRoot);
        const docker = this.client(30_000);
        const containers = await docker.listContainers({ all: true });
        for (const container of containers) {
          await docker
            .getContainer(container.Id)
            .remove({ force: true, v: true })
            .catch(() => undefined);
        }
      } catch {
        // Best effort: dockerd stops its containers on SIGTERM anyway.
      }
    }
    await this.shutdown();
    for (const pid of findProcessesMentioning(this.dir)) {
      await terminateProcess(pid, 2_000);
    }
    if (existsSync(this.dir)) removePrivateDir(this.dir);
  }

  private buildArgs(driver: string): string[] {
    const args = [
      '--host',
      `unix://${this.socketPath}`,
      '--data-root',
      this.dataRoot,
      '--exec-root',
      this.execRoot,
      '--pidfile',
      this.pidFile,
      '--config-file',
      this.configFile,
      '--bridge',
      'none',
      '--iptables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      '--storage-driver',
      driver,
      '--shutdown-timeout',
      '3',
    ];
    if (supportsFlag(this.dockerdPath, '--ip6tables')) args.push('--ip6tables=false');
    return args;
  }

  private async spawnAndWait(): Promise<void> {
    const stalePid = this.pid;
    if (stalePid !== undefined) throw new Error(`private dockerd is already running as ${stalePid}`);
    rmSync(this.pidFile, { force: true }); // a pidfile naming a dead (or zombie) process would block start-up
    this.removeStaleContainerdPidFile();
    const daemon = spawnDetachedDaemon(this.dockerdPath, this.args, this.logFile, daemonEnv());
    const child = daemon.child;

    const started = Date.now();
    const deadline = started + this.timeouts.startTimeoutMs;
    for (;;) {
      const spawnError = daemon.spawnError();
      const exit = daemon.exit();
      if (spawnError)
        throw new DaemonStartError(`could not spawn ${this.dockerdPath}: ${spawnError.message}`, false);
      if (exit) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
        const reason = tailFile(this.logFile, 1).replace(/^.*msg="([^"]*)".*$/, '$1');
        throw new DaemonStartError(`dockerd ${how} during start-up (${reason}); log ${this.logFile}`, true);
      }
      if (await this.ping(1_000)) break;
      if (Date.now() >= deadline) {
        if (child.pid !== undefined) await terminateProcess(child.pid, 2_000);
        throw new DaemonStartError(
          `dockerd did not answer ping on ${this.socketPath} within ${this.timeouts.startTimeoutMs} ms; log ${this.logFile}:\n${tailFile(this.logFile, 15)}`,
          false,
        );
      }
      await sleep(100);
    }
    if (child.pid !== undefined && this.pid !== child.pid) {
      await terminateProcess(child.pid, 2_000);
      throw new DaemonStartError(
        `something answered on ${this.socketPath} but the pidfile does not name the dockerd we spawned (${child.pid}); log ${this.logFile}`,
        false,
      );
    }
    this.log(
      `dockerd: pid ${String(child.pid)} ready in ${Date.now() - started} ms (storage driver ${this.driver})`,
    );
  }

  private isOurDaemon(pid: number): boolean {
    const cmdline = readProcessCmdline(pid);
    return (
      cmdline !== undefined &&
      cmdline.includes(`unix://${this.socketPath}`) &&
      cmdline.includes(this.dataRoot)
    );
  }

  /**
   * After kill9 the managed containerd dies too (parent-death signal) but, reparented to a PID 1
   * that reaps slowly, it can linger as a zombie. dockerd's liveness check (kill -0) counts a
   * zombie as running, waits for its socket and gives up with "timeout waiting for containerd to
   * start". A pidfile naming a dead or zombie process is therefore removed before a restart.
   */
  private removeStaleContainerdPidFile(): void {
    const file = join(this.execRoot, 'containerd', 'containerd.pid');
    let pid: number;
    try {
      pid = Number(readFileSync(file, 'utf8').trim());
    } catch {
      return;
    }
    if (!isProcessAlive(pid)) {
      rmSync(file, { force: true });
      this.log(`dockerd: removed stale containerd pidfile (pid ${pid} is gone or a zombie)`);
    }
  }

  private containerdPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.execRoot, 'containerd', 'containerd.pid'), 'utf8').trim());
      const cmdline = Number.isInteger(pid) && pid > 0 ? readProcessCmdline(pid) : undefined;
      return cmdline?.includes(this.execRoot) ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}

const flagSupport = new Map<string, boolean>();

function supportsFlag(dockerdPath: string, flag: string): boolean {
  const key = `${dockerdPath} ${flag}`;
  const known = flagSupport.get(key);
  if (known !== undefined) return known;
  const help = spawnSync(dockerdPath, ['--help'], { encoding: 'utf8', env: daemonEnv(), timeout: 10_000 });
  const supported = `${help.stdout}${help.stderr}`.includes(flag);
  flagSupport.set(key, supported);
  return supported;
}

/** dockerd's environment: no DOCKER_* and no proxies (traffic must stay on loopback). */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const upper = key.toUpperCase();
    if (upper.startsWith('DOCKER_') || upper.endsWith('_PROXY') || upper.startsWith('CONTAINERD_')) continue;
    env[key] = value;
  }
  return env;
}
