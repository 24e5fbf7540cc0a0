import { isAbsolute } from 'node:path';
import Docker from 'dockerode';

/**
 * What docker-modem reads from the environment when a client is built: with a tcp:// or ssh://
 * DOCKER_HOST it sets `host`, and a set `host` wins over `socketPath`, so `new Docker({ socketPath })`
 * would quietly talk to that other engine (and DOCKER_CERT_PATH naming missing files makes the
 * constructor throw).
 */
export const DOCKER_CLIENT_ENV = [
  'DOCKER_HOST',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
  'DOCKER_PATH_PREFIX',
  'DOCKER_CLIENT_TIMEOUT',
] as const;

export interface SocketClientOptions {
  /** Per-request timeout in ms; none when undefined (streams such as pulls). */
  readonly timeoutMs?: number | undefined;
}

/**
 * The one way this project builds a dockerode client: bound to the unix socket `socketPath` and to
 * nothing else. docker-modem merges its environment defaults under the options, so every field a
 * DOCKER_HOST could set is given explicitly, and the client is built while those variables are hidden
 * (construction is synchronous; they are restored before this returns). Nothing in the environment
 * can redirect it to a tcp://, ssh:// or default engine.
 */
export function socketClient(socketPath: string, options: SocketClientOptions = {}): Docker {
  if (typeof socketPath !== 'string' || !isAbsolute(socketPath)) {
    throw new Error(`a docker client needs the absolute path of a unix socket, got ${String(socketPath)}`);
  }
  const settings: Record<string, unknown> = {
    socketPath,
    host: undefined,
    port: undefined,
    protocol: 'http',
    pathPrefix: undefined,
    username: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
    timeout: options.timeoutMs,
  };
  const saved = DOCKER_CLIENT_ENV.map((key) => [key, process.env[key]] as const);
  for (const [key] of saved) delete process.env[key];
  try {
    return new Docker(settings as Docker.DockerOptions);
  } finally {
    for (const [key, value] of saved) if (value !== undefined) process.env[key] = value;
  }
}
