/**
 * Runs the docker CLI against a private engine only. It always passes `-H unix://<socket>`, sets
 * DOCKER_HOST to the same socket in the child's environment, drops every variable that could point
 * it elsewhere (DOCKER_CONTEXT, TLS settings) and gives it a private DOCKER_CONFIG, so neither a
 * user's contexts nor /var/run/docker.sock can ever be reached.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assertPrivateSocketPath } from './private-socket.js';

/** Debian's CLI (from docker.io) matches the daemon; otherwise whatever `docker` is on PATH. */
export function resolveDockerCli(): string {
  const fromEnv = process.env['IMAGE_KEEPER_DOCKER_CLI'];
  if (fromEnv) return fromEnv;
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
}

export interface DockerCliOptions {
  /** Directory for the CLI's config (defaults to `docker-config` next to the socket). */
  readonly configDir?: string;
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
}

export interface DockerCliResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment a docker CLI child gets: the private socket and nothing that could override it. */
export function privateDockerEnv(socketPath: string, configDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('DOCKER_') || key.startsWith('BUILDX_') || key.startsWith('COMPOSE_')) delete env[key];
  }
  env['DOCKER_HOST'] = `unix://${socketPath}`;
  env['DOCKER_CONFIG'] = configDir;
  env['DOCKER_BUILDKIT'] = '0';
  env['DOCKER_CLI_HINTS'] = 'false';
  return env;
}

/** Runs `docker -H unix://<socketPath> ...args`; rejects with stderr on a non-zero exit. */
export function runDockerCli(
  socketPath: string,
  args: readonly string[],
  options: DockerCliOptions = {},
): Promise<DockerCliResult> {
  assertPrivateSocketPath(socketPath);
  const configDir = options.configDir ?? join(dirname(socketPath), 'docker-config');
  mkdirSync(configDir, { recursive: true });
  const cli = resolveDockerCli();
  const fullArgs = ['-H', `unix://${socketPath}`, ...args];
  const env = { ...privateDockerEnv(socketPath, configDir), ...options.env };
  return new Promise((resolve, reject) => {
    const child = spawn(cli, fullArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${cli}: ${error.message}`, { cause: error }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (code === 0) {
        resolve(result);
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with ${String(code)}`;
      reject(
        new Error(`${cli} ${fullArgs.join(' ')} ${how}:\n${result.stderr.trim() || result.stdout.trim()}`),
      );
    });
  });
}

/**
 * Builds `tag` FROM `parent` on the private engine, offline (the classic builder, no pull, no
 * network), as an operator building on a managed image would: the engine then refuses to delete
 * `parent` while the child exists. `contextDir` is created.
 */
export async function buildChildImage(
  socketPath: string,
  contextDir: string,
  parent: string,
  tag: string,
  label: string,
): Promise<void> {
  mkdirSync(contextDir, { recursive: true });
  writeFileSync(join(contextDir, 'Dockerfile'), `FROM ${parent}\nLABEL ${label}\n`);
  await runDockerCli(socketPath, ['build', '--pull=false', '--network', 'none', '-t', tag, contextDir]);
}
