/**
 * A private dockerd for the engine tests: its own --data-root, --exec-root, unix socket, pidfile
 * and (empty) daemon.json, no bridge, no iptables, no ip forwarding, and its own containerd. It never
 * touches the machine-wide engine. The process is tracked by the PID we spawned and by its pidfile, so
 * a dockerd restarted from a test worker can still be stopped by the globalSetup teardown.
 *
 * containerd: dockerd 20.10 uses /run/containerd/containerd.sock whenever that file exists, so on a
 * machine running containerd it would share the machine's. Instead a private containerd runs first
 * (own root, state, socket and config, CRI off) and dockerd gets `--containerd=<its socket>` plus
 * containerd namespaces unique to this engine. Two paths stay machine-wide because the binaries fix
 * them: the shims' sockets in /run/containerd/s (named by a hash of our socket, removed when the shim
 * exits) and dockerd's plugin dir /run/docker/plugins (see machine-dirs.ts). Without a containerd
 * binary, dockerd starts its own managed one as before.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { spawnDetachedDaemon } from './detached-daemon.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** The private containerd (absent: dockerd manages its own). */
  readonly containerd?: PrivateContainerdState;
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

export interface PrivateContainerdState {
  readonly binary: string;
  readonly socketPath: string;
  readonly configFile: string;
  readonly pidFile: string;
  readonly logFile: string;
  /** containerd namespaces dockerd uses: unique to this engine. */
  readonly namespace: string;
  readonly pluginsNamespace: string;
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
  readonly containerd: PrivateContainerdState | undefined;
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
    this.containerd = state.containerd;
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
        ...(containerdBinary() ? { containerd: containerdState(dir, containerdBinary()!) } : {}),
      },
      { startTimeoutMs: options.startTimeoutMs ?? 60_000, stopTimeoutMs: options.stopTimeoutMs ?? 20_000 },
      options.log ?? (() => undefined),
    );
    // An empty config file keeps /etc/docker/daemon.json (mirrors, hosts, data-root...) out of it.
    writeFileSync(engine.configFile, '{}\n');
    if (engine.containerd)
      writeFileSync(engine.containerd.configFile, containerdConfig(dir, engine.containerd));
    else
      engine.log(
        `dockerd: no containerd binary; dockerd starts its own (it would share ${SYSTEM_CONTAINERD_SOCKET} if that existed)`,
      );
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
      ...(this.containerd ? { containerd: this.containerd } : {}),
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
    // A power cut takes containerd too: ours is killed alike (a managed one dies with dockerd by its
    // parent-death signal); a restart then starts a fresh one. The shims live on, as they would not.
    if (this.containerd && containerdPid !== undefined) signalProcess(containerdPid, 'SIGKILL');
    if (!(await waitForProcessExit(pid, 10_000))) throw new Error(`kill9: dockerd ${pid} survived SIGKILL`);
    if (containerdPid !== undefined) await waitForProcessExit(containerdPid, 5_000);
    this.log(
      `dockerd: killed ${pid}${this.containerd && containerdPid !== undefined ? ` and containerd ${containerdPid}` : ''} with SIGKILL`,
    );
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
    if (pid !== undefined) {
      const how = await terminateProcess(pid, this.timeouts.stopTimeoutMs);
      this.log(`dockerd: ${pid} stopped (${how})`);
    }
    const containerdPid = this.containerd ? this.containerdPid() : undefined;
    if (containerdPid !== undefined) {
      const how = await terminateProcess(containerdPid, 10_000);
      this.log(`containerd: ${containerdPid} stopped (${how})`);
    }
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
    if (this.containerd) {
      args.push(
        '--containerd',
        this.containerd.socketPath,
        '--containerd-namespace',
        this.containerd.namespace,
        '--containerd-plugins-namespace',
        this.containerd.pluginsNamespace,
      );
    }
    if (supportsFlag(this.dockerdPath, '--ip6tables')) args.push('--ip6tables=false');
    return args;
  }

  private async spawnAndWait(): Promise<void> {
    const stalePid = this.pid;
    if (stalePid !== undefined) throw new Error(`private dockerd is already running as ${stalePid}`);
    rmSync(this.pidFile, { force: true }); // a pidfile naming a dead (or zombie) process would block start-up
    this.removeStaleContainerdPidFile();
    await this.ensureContainerd();
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

  /** PID of this engine's containerd (ours, or dockerd's managed one), if it runs. */
  containerdPid(): number | undefined {
    const [file, mark] = this.containerd
      ? [this.containerd.pidFile, this.containerd.configFile]
      : [join(this.execRoot, 'containerd', 'containerd.pid'), this.execRoot];
    try {
      const pid = Number(readFileSync(file, 'utf8').trim());
      const cmdline =
        Number.isInteger(pid) && pid > 0 && isProcessAlive(pid) ? readProcessCmdline(pid) : undefined;
      return cmdline?.includes(mark) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Starts the private containerd unless it runs, and waits until its socket accepts connections. */
  private async ensureContainerd(): Promise<void> {
    const containerd = this.containerd;
    if (!containerd || this.containerdPid() !== undefined) return;
    rmSync(containerd.socketPath, { force: true });
    rmSync(`${containerd.socketPath}.ttrpc`, { force: true });
    const daemon = spawnDetachedDaemon(
      containerd.binary,
      ['--config', containerd.configFile, '--address', containerd.socketPath],
      containerd.logFile,
      daemonEnv(),
    );
    const pid = daemon.child.pid;
    if (pid !== undefined) writeFileSync(containerd.pidFile, `${pid}\n`);
    const started = Date.now();
    const deadline = started + this.timeouts.startTimeoutMs;
    for (;;) {
      const spawnError = daemon.spawnError();
      if (spawnError)
        throw new DaemonStartError(`could not spawn ${containerd.binary}: ${spawnError.message}`, false);
      const exit = daemon.exit();
      if (exit) {
        throw new DaemonStartError(
          `containerd exited during start-up (${exit.signal ?? `code ${String(exit.code)}`}); log ${containerd.logFile}:\n${tailFile(containerd.logFile, 10)}`,
          false,
        );
      }
      if (await socketAccepts(containerd.socketPath)) break;
      if (Date.now() >= deadline) {
        if (pid !== undefined) await terminateProcess(pid, 2_000);
        throw new DaemonStartError(
          `containerd did not open ${containerd.socketPath} within ${this.timeouts.startTimeoutMs} ms; log ${containerd.logFile}`,
          false,
        );
      }
      await sleep(50);
    }
    this.log(
      `containerd: pid ${String(pid)} ready in ${Date.now() - started} ms (namespace ${containerd.namespace})`,
    );
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

const SYSTEM_CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

function containerdBinary(): string | undefined {
  const fromEnv = process.env['IMAGE_KEEPER_CONTAINERD'];
  if (fromEnv !== undefined) return fromEnv === '' ? undefined : fromEnv;
  return ['/usr/bin/containerd', '/usr/sbin/containerd', '/usr/local/bin/containerd'].find((path) =>
    existsSync(path),
  );
}

function containerdState(dir: string, binary: string): PrivateContainerdState {
  // Unique to this engine's directory, and the same after a restart (containers are found by it).
  const tag = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  return {
    binary,
    socketPath: join(dir, 'containerd.sock'),
    configFile: join(dir, 'containerd.toml'),
    pidFile: join(dir, 'containerd.pid'),
    logFile: join(dir, 'containerd.log'),
    namespace: `ik-${tag}`,
    pluginsNamespace: `ik-${tag}-plugins`,
  };
}

/**
 * containerd's whole configuration, so /etc/containerd/config.toml never applies: everything under
 * the engine's dir, no CRI plugin (it would set up CNI), no debug or metrics listener.
 */
function containerdConfig(dir: string, containerd: PrivateContainerdState): string {
  const quote = (value: string): string => JSON.stringify(value);
  return [
    'version = 2',
    `root = ${quote(join(dir, 'containerd', 'root'))}`,
    `state = ${quote(join(dir, 'containerd', 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '',
    '[grpc]',
    `  address = ${quote(containerd.socketPath)}`,
    '',
    '[ttrpc]',
    `  address = ${quote(`${containerd.socketPath}.ttrpc`)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "warn"',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${quote(join(dir, 'containerd', 'opt'))}`,
    '',
  ].join('\n');
}

function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
