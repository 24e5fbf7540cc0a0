import { KeeperError, isKeeperError } from '../../core/errors.js';

/** What docker-modem attaches to an HTTP error (and Node to a socket error). */
interface ModemError {
  readonly statusCode?: number;
  readonly json?: unknown;
  readonly code?: string;
  readonly message?: string;
}

/** Socket-level failures: the engine is down, the socket is missing or not ours to open. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EACCES',
  'EPERM',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

export function httpStatusOf(error: unknown): number | undefined {
  const status = (error as ModemError | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The engine's own message (`{"message": ...}` body) without docker-modem's "(HTTP code ...)" prefix. */
export function engineMessageOf(error: unknown): string {
  const json = (error as ModemError | undefined)?.json;
  if (
    typeof json === 'object' &&
    json !== null &&
    typeof (json as { message?: unknown }).message === 'string'
  ) {
    return (json as { message: string }).message;
  }
  const message = (error as ModemError | undefined)?.message ?? String(error);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

/** True for errors that mean nothing answered on the socket (rather than the engine saying no). */
export function isUnavailable(error: unknown): boolean {
  if (httpStatusOf(error) !== undefined) return false;
  const code = (error as ModemError | undefined)?.code;
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) return true;
  return /socket hang up|connect E[A-Z]+/.test((error as ModemError | undefined)?.message ?? '');
}

export function engineUnavailable(socketPath: string, cause: unknown): KeeperError {
  const reason = (cause as ModemError | undefined)?.message ?? String(cause);
  return new KeeperError('ENGINE_UNAVAILABLE', `docker engine at ${socketPath} does not answer: ${reason}`, {
    cause,
    details: { socketPath, code: (cause as ModemError | undefined)?.code, transient: true },
  });
}

/**
 * Every dockerode call goes through here: KeeperErrors pass unchanged, socket failures become
 * ENGINE_UNAVAILABLE naming the socket, anything else is left to the caller's own mapping.
 */
export function rethrowUnavailable(socketPath: string, error: unknown): never {
  if (isKeeperError(error)) throw error;
  if (isUnavailable(error)) throw engineUnavailable(socketPath, error);
  throw error;
}

export interface PullFailure {
  readonly code: 'REGISTRY_ERROR' | 'DISK_FULL' | 'PULL_FAILED';
  /** Registry HTTP status where one can be told, else 'timeout' / 'connection' / undefined. */
  readonly status: number | 'timeout' | 'connection' | undefined;
  readonly transient: boolean;
}

/**
 * Classifies a pull error from its message. dockerd rarely passes the registry's status through:
 * a manifest 401 arrives as HTTP 500 "unauthorized", a 404 as "manifest unknown", a blob 500 as
 * "received unexpected HTTP status: 500 ...", so the text is what there is to go on. Order matters:
 * disk and engine-side failures first, then auth, not-found, throttling, explicit statuses, network.
 */
export function classifyPullFailure(message: string, engineStatus?: number): PullFailure {
  const text = message.toLowerCase();
  if (text.includes('no space left on device'))
    return { code: 'DISK_FULL', status: undefined, transient: false };
  if (
    /failed to register layer|error creating overlay mount|failed to extract|invalid tar header/.test(text)
  ) {
    return { code: 'PULL_FAILED', status: undefined, transient: false };
  }
  if (/unauthorized|authentication required|no basic auth credentials|\b401\b/.test(text)) {
    return { code: 'REGISTRY_ERROR', status: 401, transient: false };
  }
  if (/(?<!permission )denied|forbidden|\b403\b/.test(text))
    return { code: 'REGISTRY_ERROR', status: 403, transient: false };
  if (/manifest unknown|unknown blob|blob unknown|name unknown|not found|\b404\b/.test(text)) {
    return { code: 'REGISTRY_ERROR', status: 404, transient: false };
  }
  if (/toomanyrequests|too many requests|\b429\b/.test(text))
    return { code: 'REGISTRY_ERROR', status: 429, transient: true };
  const explicit = /http status: (\d{3})/.exec(text)?.[1];
  if (explicit !== undefined) {
    const status = Number(explicit);
    return { code: 'REGISTRY_ERROR', status, transient: status >= 500 || status === 408 };
  }
  if (/timeout|timed out|deadline exceeded/.test(text))
    return { code: 'REGISTRY_ERROR', status: 'timeout', transient: true };
  if (
    /connection refused|connection reset|unexpected eof|\beof\b|broken pipe|no route to host|network is unreachable|dial tcp|no such host/.test(
      text,
    )
  ) {
    return { code: 'REGISTRY_ERROR', status: 'connection', transient: true };
  }
  if (engineStatus === 404) return { code: 'REGISTRY_ERROR', status: 404, transient: false };
  // Unknown: worth a bounded retry (the core caps retries), never a silent success.
  return { code: 'REGISTRY_ERROR', status: undefined, transient: true };
}

export function pullFailure(
  ref: string,
  message: string,
  engineStatus?: number,
  cause?: unknown,
): KeeperError {
  const failure = classifyPullFailure(message, engineStatus);
  const status = failure.status === undefined ? '' : ` (${String(failure.status)})`;
  return new KeeperError(failure.code, `pull of ${ref} failed${status}: ${message}`, {
    ...(cause === undefined ? {} : { cause }),
    details: {
      ref,
      ...(failure.status === undefined ? {} : { status: failure.status }),
      transient: failure.transient,
    },
  });
}
