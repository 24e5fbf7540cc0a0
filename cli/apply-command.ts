import { readFile } from 'node:fs/promises';
import { KeeperError, isKeeperError } from '../core/errors.js';
import type { Target } from '../core/model/target.js';
import { parseJsonText } from '../core/target/json-text.js';
import { parseTargetJson } from '../core/target/parse-target.js';
import type { CliIo } from './cli-io.js';
import { withDevice } from './device.js';
import type { DeviceFlags, Env } from './device-options.js';
import { resolveDeviceSettings } from './device-options.js';
import { EXIT } from './exit-codes.js';
import { ProgressRenderer } from './progress-renderer.js';

export interface ApplyFlags extends DeviceFlags {
  /** JSON lines even on a terminal. */
  readonly json?: boolean;
}

/**
 * `image-keeper apply [target.json]`: startup cleanup, converge to the target, idle cleanup. Without a
 * file it converges to the persisted target, which is what the device does after a restart. The target
 * is read and validated before the device is touched, so a bad file changes nothing.
 */
export async function applyCommand(
  targetPath: string | undefined,
  flags: ApplyFlags,
  io: CliIo,
  env: Env = process.env,
): Promise<number> {
  const settings = resolveDeviceSettings(flags, env);
  const target = targetPath === undefined ? null : await readTargetFile(targetPath);
  for (const warning of settings.warnings) io.err(`image-keeper: warning: ${warning}`);
  const columns = process.stdout.columns;
  const renderer = new ProgressRenderer({
    tty: io.isTty && flags.json !== true,
    write: (line) => io.out(line),
    ...(columns !== undefined && columns > 0 ? { columns } : {}),
  });
  const started = Date.now();
  try {
    await withDevice({ settings, events: renderer, access: 'write' }, async (device) => {
      renderer.emit({
        type: 'device',
        db: settings.dbPath,
        engine: settings.engineUrl,
        dbCreated: !device.dbExisted,
      });
      if (device.recovered) renderer.emit({ type: 'db-recovered', ...device.recovered });
      if (target === null && (await device.state.readTarget()) === null) {
        throw new KeeperError(
          'USAGE',
          `no target file given and ${settings.dbPath} holds no target yet: pass a target file`,
        );
      }
      await device.keeper.startup();
      const report = await device.keeper.apply(target);
      await device.keeper.idleTick();
      renderer.emit({
        type: 'done',
        passes: report.passes,
        stepsRun: report.stepsRun,
        ms: Date.now() - started,
      });
    });
  } finally {
    renderer.finish();
  }
  return EXIT.OK;
}

/** A target file: balena target state (v3 or v2) or our own format. Every problem is INVALID_TARGET, one line. */
export async function readTargetFile(path: string): Promise<Target> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeeperError(
      'INVALID_TARGET',
      `${path}: cannot read the target file: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let value: unknown;
  try {
    value = parseJsonText(text, path);
  } catch (error) {
    if (isKeeperError(error, 'INVALID_TARGET') && /\.ya?ml$/i.test(path)) {
      throw new KeeperError(
        'INVALID_TARGET',
        `${error.message} (a target file is JSON; a YAML scenario is replayed with image-keeper run)`,
        { cause: error },
      );
    }
    throw error;
  }
  return parseTargetJson(value, path);
}
