/**
 * One error base class for the whole project. `code` is a stable string that callers, tests and
 * the CLI switch on; messages are for people and may change.
 */
export type KeeperErrorCode =
  | 'INVALID_REFERENCE'
  | 'INVALID_TARGET'
  | 'INVALID_SCENARIO'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_IN_USE'
  | 'PULL_FAILED'
  | 'PULL_INCOMPLETE'
  | 'DELTA_SOURCE_MISSING'
  | 'DELTA_FAILED'
  | 'DELTAS_UNSUPPORTED'
  | 'REGISTRY_ERROR'
  | 'ENGINE_UNAVAILABLE'
  | 'DISK_FULL'
  | 'DB_CORRUPT'
  | 'DB_LOCKED'
  | 'DB_ERROR'
  | 'NOT_CONVERGED'
  | 'INVARIANT_VIOLATED'
  | 'POWER_CUT'
  | 'EXPECTATION_FAILED'
  | 'USAGE';

export class KeeperError extends Error {
  readonly code: KeeperErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: KeeperErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeeperError';
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

export function isKeeperError(error: unknown, code?: KeeperErrorCode): error is KeeperError {
  return error instanceof KeeperError && (code === undefined || error.code === code);
}

/** Thrown by the simulator's fault injector: the device lost power. Never caught by the core. */
export function isPowerCut(error: unknown): error is KeeperError {
  return isKeeperError(error, 'POWER_CUT');
}

/** An assertion that stays on in production (TigerBeetle style): a broken invariant stops the process. */
export function assert(
  condition: unknown,
  message: string,
  details?: Record<string, unknown>,
): asserts condition {
  if (!condition) {
    throw new KeeperError('INVARIANT_VIOLATED', `assertion failed: ${message}`, details ? { details } : {});
  }
}
