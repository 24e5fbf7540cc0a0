import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { KeeperError } from '../core/errors.js';
import { loadScenarioText } from '../sim/scenario/load-scenario.js';
import { writeScenario } from '../sim/scenario/write-scenario.js';
import type { CliIo } from './cli-io.js';
import { captureScenario } from './capture-scenario.js';
import { withDevice } from './device.js';
import type { DeviceFlags, Env } from './device-options.js';
import { resolveDeviceSettings } from './device-options.js';
import { EXIT } from './exit-codes.js';

/**
 * `image-keeper capture <out.yaml>`: the device's rows, engine images, containers and persisted target
 * as a scenario file that `image-keeper run` replays on the fakes. Read-only on the device. The file is
 * loaded back before it is written, so a capture that the lab could not read fails here, not there.
 */
export async function captureCommand(
  outPath: string,
  flags: DeviceFlags,
  io: CliIo,
  env: Env = process.env,
): Promise<number> {
  const settings = resolveDeviceSettings(flags, env);
  for (const warning of settings.warnings) io.err(`image-keeper: warning: ${warning}`);
  const out = resolve(outPath);
  const scenario = await withDevice({ settings, access: 'read-only' }, async (device) => {
    const rows = await device.state.listRows();
    const target = await device.state.readTarget();
    const images = await device.engine.listImages();
    const containers = await device.engine.listContainers();
    const origin = {
      host: hostname(),
      time: new Date().toISOString(),
      db: settings.dbPath,
      engine: settings.engineUrl,
    };
    return captureScenario({ rows, images, containers, target, origin }, out);
  });
  const text = writeScenario(scenario);
  try {
    loadScenarioText(text, out, dirname(out));
  } catch (error) {
    throw new KeeperError(
      'INVARIANT_VIOLATED',
      `the capture does not load back as a scenario (a bug; nothing was written): ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  try {
    await writeFile(out, text);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new KeeperError(
      code === 'ENOSPC' ? 'DISK_FULL' : 'USAGE',
      `cannot write ${out}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const { rows, images, containers, target } = scenario.initial;
  io.out(
    `captured ${rows.length} row(s), ${images.length} engine image(s), ${containers.length} container(s) and ${target ? 'the persisted target' : 'no target (none accepted yet)'} into ${out}`,
  );
  io.out(`replay it on the fakes with: image-keeper run ${outPath}`);
  return EXIT.OK;
}
