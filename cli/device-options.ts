import { resolve } from 'node:path';
import type { Command } from 'commander';
import { KeeperError } from '../core/errors.js';
import type { CrashSpec } from './crash-hook.js';
import { crashHookFrom } from './crash-hook.js';

/** Where the state DB lives when neither --db nor IMAGE_KEEPER_DB says otherwise. */
export const DEFAULT_DB_PATH = '/var/lib/image-keeper/images.sqlite';

/** The flags every device command takes (commander's camelCased names). */
export interface DeviceFlags {
  readonly db?: string;
  readonly engine?: string;
  readonly recoverDb?: boolean;
  /** Seconds a silent pull stream may last before it is cut (apply only). */
  readonly pullTimeout?: string;
}

/** Everything a device command needs to open the device, resolved from flags and environment. */
export interface DeviceSettings {
  /** Absolute path of the state DB; the lock is `${dbPath}.lock`. */
  readonly dbPath: string;
  readonly engineUrl: string;
  /** Where the engine URL came from, for messages. */
  readonly engineFrom: '--engine' | 'DOCKER_HOST';
  readonly recoverDb: boolean;
  readonly retryBaseMs?: number;
  readonly pullIdleTimeoutMs?: number;
  readonly crash?: CrashSpec;
  /** One-line warnings to print before anything runs. */
  readonly warnings: readonly string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Resolves flags and environment. The engine is never guessed: --engine, else DOCKER_HOST, else a
 * USAGE error, so image-keeper cannot silently manage the images of an engine nobody named.
 */
export function resolveDeviceSettings(flags: DeviceFlags, env: Env): DeviceSettings {
  const warnings: string[] = [];
  const dbText = nonEmpty(flags.db) ?? nonEmpty(env['IMAGE_KEEPER_DB']) ?? DEFAULT_DB_PATH;
  const flagEngine = nonEmpty(flags.engine);
  const hostEngine = nonEmpty(env['DOCKER_HOST']);
  if (flagEngine === undefined && hostEngine === undefined) {
    throw new KeeperError(
      'USAGE',
      'no engine named: pass --engine unix:///path/to/docker.sock or set DOCKER_HOST (image-keeper never assumes a default socket)',
    );
  }
  const engineFrom = flagEngine !== undefined ? '--engine' : 'DOCKER_HOST';
  const engineUrl = (flagEngine ?? hostEngine) as string;
  if (!/^unix:\/\/\/./.test(engineUrl)) {
    throw new KeeperError(
      'USAGE',
      `${engineFrom} ${JSON.stringify(engineUrl)} is not a local engine socket: use unix:///absolute/path.sock`,
    );
  }
  const retryBaseMs = integerFrom(env['IMAGE_KEEPER_RETRY_BASE_MS'], 'IMAGE_KEEPER_RETRY_BASE_MS', 0);
  const pullTimeoutSeconds = integerFrom(flags.pullTimeout, '--pull-timeout', 1);
  const hook = crashHookFrom(env);
  if (hook.warning !== undefined) warnings.push(hook.warning);
  return {
    dbPath: resolve(dbText),
    engineUrl,
    engineFrom,
    recoverDb: flags.recoverDb ?? false,
    ...(retryBaseMs !== undefined ? { retryBaseMs } : {}),
    ...(pullTimeoutSeconds !== undefined ? { pullIdleTimeoutMs: pullTimeoutSeconds * 1000 } : {}),
    ...(hook.spec !== undefined ? { crash: hook.spec } : {}),
    warnings,
  };
}

/** Adds --db and --engine (and their help) to a device command. */
export function withDeviceFlags(command: Command): Command {
  return command
    .option(
      '--db <path>',
      `state DB file (default: $IMAGE_KEEPER_DB, else ${DEFAULT_DB_PATH}); the lock is <path>.lock`,
    )
    .option(
      '--engine <url>',
      'engine socket, unix:///path/to/docker.sock (default: $DOCKER_HOST; there is no other default)',
    );
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function integerFrom(text: string | undefined, what: string, min: number): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min) {
    throw new KeeperError('USAGE', `${what} must be an integer of at least ${min}, got '${text}'`);
  }
  return Number(text);
}
