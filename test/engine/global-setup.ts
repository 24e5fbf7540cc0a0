/**
 * globalSetup of the "engine" vitest project: a PRIVATE dockerd and registry, never the machine's.
 *
 * 1. installs Debian's docker.io, docker-registry and busybox-static if a binary is missing;
 * 2. starts dockerd (own data-root, exec-root, socket, pidfile; no bridge, no iptables) and
 *    docker-registry (127.0.0.1:<free port>) in one private dir under os.tmpdir();
 * 3. pings the private socket and checks its DockerRootDir BEFORE pointing DOCKER_HOST at it, so
 *    testcontainers can never fall back to /var/run/docker.sock;
 * 4. builds the test image catalogue offline, pushes it, and removes it locally;
 * 5. provides `engine` (see support/engine-info.ts) and writes it to $IMAGE_KEEPER_ENGINE_INFO;
 * and returns a teardown that stops both by PID and deletes the private dir. SIGINT/SIGTERM/SIGHUP
 * (vitest then exits without the teardown) stop them too, synchronously, from the signal handler.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { resolveDockerCli } from './support/docker-cli.js';
import { ENGINE_INFO_ENV, type EngineInfo } from './support/engine-info.js';
import { forgetOtherEngines } from './support/docker-env.js';
import { stopRunOnSignals } from './support/emergency-stop.js';
import { keepLogs } from './support/kept-logs.js';
import { noteMachineDirs } from './support/machine-dirs.js';
import { createPrivateDir, removePrivateDir } from './support/private-dir.js';
import { PrivateEngine } from './support/private-engine.js';
import { PrivateRegistry } from './support/private-registry.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { claimPrivateDir, sweepStaleRuns } from './support/stale-runs.js';
import { buildTestImages } from './support/test-images.js';

const INSTALL_SCRIPT = fileURLToPath(new URL('../../scripts/install-engine-deps.sh', import.meta.url));
const REQUIRED_BINARIES = ['/usr/sbin/dockerd', '/usr/bin/docker-registry', '/bin/busybox'];
/** Environment variables the setup sets (or clears) for the workers; restored by the teardown. */
const MANAGED_ENV = [
  'DOCKER_HOST',
  'DOCKER_CONTEXT',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
  'DOCKER_CONFIG',
  'TESTCONTAINERS_RYUK_DISABLED',
  'TESTCONTAINERS_HOST_OVERRIDE',
  ENGINE_INFO_ENV,
] as const;

const log = (line: string): void => console.log(`[engine-setup] ${line}`);

// eslint-disable-next-line no-restricted-syntax -- vitest's globalSetup contract requires a default export
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Before anything else: a tcp:// or ssh:// DOCKER_HOST (or a context or TLS settings) must never
  // reach a client this setup or a test builds. Restored by the teardown.
  const savedEnv = new Map(MANAGED_ENV.map((key) => [key, process.env[key]]));
  const dropped = forgetOtherEngines();
  const timings: Record<string, number> = {};
  const began = Date.now();
  let mark = began;
  const lap = (phase: string): void => {
    const now = Date.now();
    timings[phase] = now - mark;
    mark = now;
  };

  ensureDependencies(log);
  lap('installMs');
  assertNoTestcontainersHostOverride();
  if (dropped.length > 0)
    log(`ignoring ${dropped.join(', ')} from the environment: only the private engine is used`);
  await sweepStaleRuns(log);

  const machineDirsCleanup = noteMachineDirs();
  const rootDir = createPrivateDir();
  claimPrivateDir(rootDir);
  // Ctrl-C or a kill of vitest skips the teardown: stop what we start from the signal handler itself.
  const forgetSignalStop = stopRunOnSignals(rootDir, log, () => machineDirsCleanup(log));
  let engine: PrivateEngine | undefined;
  let registry: PrivateRegistry | undefined;

  const teardown = async (keep = process.env['IMAGE_KEEPER_KEEP_ENGINE_LOGS'] === '1'): Promise<void> => {
    const stopping = Date.now();
    if (keep) {
      const kept = keepLogs(rootDir);
      if (kept) log(`dockerd and registry logs kept in ${kept}`);
    }
    const results = await Promise.allSettled([engine?.stop(), registry?.stop()]);
    for (const [key, value] of savedEnv) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    try {
      removePrivateDir(rootDir);
      machineDirsCleanup(log);
    } finally {
      forgetSignalStop();
    }
    log(`stopped dockerd and registry, removed ${rootDir} in ${Date.now() - stopping} ms`);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0)
      throw new AggregateError(
        failed.map((f) => f.reason as unknown),
        'engine teardown failed',
      );
  };

  try {
    log(`private dir ${rootDir}`);
    const [engineResult, registryResult] = await Promise.allSettled([
      PrivateEngine.start({ dir: join(rootDir, 'e'), log }),
      PrivateRegistry.start({ dir: join(rootDir, 'r'), log }),
    ]);
    if (engineResult.status === 'fulfilled') engine = engineResult.value;
    if (registryResult.status === 'fulfilled') registry = registryResult.value;
    if (engineResult.status === 'rejected') throw engineResult.reason;
    if (registryResult.status === 'rejected') throw registryResult.reason;
    if (engine === undefined || registry === undefined)
      throw new Error('unreachable: engine or registry missing');
    lap('startMs');

    // Fail loudly, before anything reads DOCKER_HOST, if the private engine does not answer.
    await assertPrivateEngineAnswers(engine.socketPath, engine.dataRoot);
    const dockerConfig = join(rootDir, 'docker-config');
    mkdirSync(dockerConfig, { recursive: true });
    process.env['DOCKER_HOST'] = engine.dockerHost;
    process.env['DOCKER_CONFIG'] = dockerConfig;
    process.env['TESTCONTAINERS_RYUK_DISABLED'] = 'true';
    process.env['TESTCONTAINERS_HOST_OVERRIDE'] = '127.0.0.1';

    const images = await buildTestImages({
      socketPath: engine.socketPath,
      registryHost: registry.host,
      workDir: join(rootDir, 'build'),
      log,
    });
    lap('imagesMs');
    timings['totalMs'] = Date.now() - began;

    const infoFile = join(rootDir, 'engine-info.json');
    const info: EngineInfo = {
      rootDir,
      dockerHost: engine.dockerHost,
      socketPath: engine.socketPath,
      dataRoot: engine.dataRoot,
      storageDriver: engine.storageDriver,
      engine: engine.state,
      registry: { ...registry.state, url: registry.url },
      images,
      infoFile,
      timings,
    };
    writeFileSync(infoFile, `${JSON.stringify(info, null, 2)}\n`);
    process.env[ENGINE_INFO_ENV] = infoFile;
    project.provide('engine', info);
    log(
      `ready in ${timings['totalMs']} ms (install ${timings['installMs']}, start ${timings['startMs']}, ` +
        `images ${timings['imagesMs']}); DOCKER_HOST=${engine.dockerHost}, registry ${registry.host}, ` +
        `storage driver ${engine.storageDriver}`,
    );
    return () => teardown();
  } catch (error) {
    const kept = keepLogs(rootDir);
    await teardown(false).catch((cleanupError: unknown) =>
      log(`cleanup after failed setup also failed: ${String(cleanupError)}`),
    );
    if (kept && error instanceof Error)
      error.message += `\n(the logs named above were copied to ${kept} before ${rootDir} was removed)`;
    throw error;
  }
}

function ensureDependencies(say: (line: string) => void): void {
  const missing = REQUIRED_BINARIES.filter((binary) => !existsSync(binary));
  const cli = resolveDockerCli();
  if (cli.startsWith('/') ? !existsSync(cli) : spawnSync(cli, ['--version']).status !== 0) missing.push(cli);
  if (missing.length === 0) return;
  say(`missing ${missing.join(', ')}: running ${INSTALL_SCRIPT}`);
  const result = spawnSync('bash', [INSTALL_SCRIPT], { stdio: 'inherit' });
  if (result.status !== 0)
    throw new Error(
      `${INSTALL_SCRIPT} failed (exit ${String(result.status)}); cannot start the private engine`,
    );
  const still = REQUIRED_BINARIES.filter((binary) => !existsSync(binary));
  if (still.length > 0) throw new Error(`still missing after install: ${still.join(', ')}`);
}

/** ~/.testcontainers.properties' tc.host / docker.host would win over DOCKER_HOST in testcontainers. */
function assertNoTestcontainersHostOverride(): void {
  const file = join(homedir(), '.testcontainers.properties');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  if (/^\s*(tc\.host|docker\.host)\s*[=:]/m.test(text)) {
    throw new Error(
      `${file} sets tc.host/docker.host, which would make testcontainers bypass the private engine; remove it`,
    );
  }
}
