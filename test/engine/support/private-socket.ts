/**
 * Guards against ever addressing a machine-wide engine. The suite deletes images, so any socket
 * that is (or resolves to) a well-known system socket is rejected before anything connects.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { socketClient } from '../../../adapters/docker/docker-client.js';

const SYSTEM_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

export function assertPrivateSocketPath(socketPath: string): void {
  if (!isAbsolute(socketPath)) throw new Error(`engine socket must be an absolute path, got ${socketPath}`);
  const candidates = [socketPath];
  try {
    candidates.push(realpathSync(socketPath));
  } catch {
    // Not created yet: the literal path is all there is to check.
  }
  for (const candidate of candidates) {
    if (
      SYSTEM_SOCKETS.includes(candidate) ||
      candidate.startsWith('/run/user/') ||
      candidate.endsWith('/.docker/run/docker.sock')
    ) {
      throw new Error(
        `refusing to use ${socketPath}: it is a machine-wide docker socket, not the private engine`,
      );
    }
  }
}

/**
 * Pings the private engine and checks it really is ours (its DockerRootDir is our data-root).
 * Throws loudly otherwise: testcontainers would silently fall back to /var/run/docker.sock.
 */
export async function assertPrivateEngineAnswers(
  socketPath: string,
  dataRoot: string,
  timeoutMs = 5_000,
): Promise<void> {
  assertPrivateSocketPath(socketPath);
  const docker = socketClient(socketPath, { timeoutMs });
  try {
    await docker.ping();
  } catch (error) {
    throw new Error(`private dockerd at ${socketPath} does not answer ping; refusing to continue`, {
      cause: error,
    });
  }
  const info = (await docker.info()) as { DockerRootDir?: string };
  if (info.DockerRootDir !== dataRoot) {
    throw new Error(
      `engine at ${socketPath} reports DockerRootDir ${String(info.DockerRootDir)}, expected the private ${dataRoot}`,
    );
  }
}
