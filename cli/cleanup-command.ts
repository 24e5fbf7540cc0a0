import { KeeperError } from '../core/errors.js';
import type { StartupCleanupResult } from '../core/cleanup/startup-cleanup.js';
import type { KeeperEvent } from '../core/ports/event-sink.js';
import type { CliIo } from './cli-io.js';
import { previewCleanup } from './cleanup-preview.js';
import { withDevice } from './device.js';
import type { DeviceFlags, Env } from './device-options.js';
import { resolveDeviceSettings } from './device-options.js';
import { EXIT } from './exit-codes.js';

export interface CleanupFlags extends DeviceFlags {
  readonly dryRun?: boolean;
}

const DANGLING = 'dangling: no tag, no digest, no row, no container';

/**
 * `image-keeper cleanup [--dry-run]`: startup cleanup (rows left by an interrupted pull or removal),
 * then idle cleanup (dangling images), printing each removal with its reason. It never applies a
 * target, so it never fetches, switches containers or removes a row the target still needs. With
 * --dry-run the same core code runs over a copy of the rows and an engine that only pretends.
 */
export async function cleanupCommand(
  flags: CleanupFlags,
  io: CliIo,
  env: Env = process.env,
): Promise<number> {
  const settings = resolveDeviceSettings(flags, env);
  for (const warning of settings.warnings) io.err(`image-keeper: warning: ${warning}`);
  const dry = flags.dryRun === true;
  if (dry && flags.recoverDb === true) {
    throw new KeeperError(
      'USAGE',
      '--dry-run changes nothing, and --recover-db would move the state DB aside: use one or the other',
    );
  }
  await withDevice({ settings, access: dry ? 'read-only' : 'no-create' }, async (device) => {
    if (device.recovered)
      io.out(
        `state DB was corrupt (${device.recovered.reason}); moved to ${device.recovered.movedTo}; starting empty`,
      );
    const target = await device.state.readTarget();
    let startup: StartupCleanupResult;
    let removed: readonly string[];
    let skipped: string | undefined;
    if (dry) {
      const preview = await previewCleanup(device, await device.state.listRows(), target);
      ({ startup, idleRemoved: removed, idleSkipped: skipped } = preview);
    } else {
      const events: KeeperEvent[] = [];
      const keeper = device.keeperOver({
        db: device.state,
        targets: device.state,
        engine: device.engine,
        containers: device.engine,
        crashPoints: device.crashPoints,
        events: { emit: (e) => events.push(e) },
      });
      startup = await keeper.startup();
      removed = await keeper.idleTick();
      skipped = events.find(
        (e): e is Extract<KeeperEvent, { type: 'idle-cleanup' }> => e.type === 'idle-cleanup',
      )?.skipped;
    }
    const lines = describeCleanup(startup, removed, skipped, target !== null, dry);
    for (const line of lines) io.out(line);
  });
  return EXIT.OK;
}

/** One line per removal or repair, with why; `would` in a dry run. */
export function describeCleanup(
  startup: StartupCleanupResult,
  idleRemoved: readonly string[],
  idleSkipped: string | undefined,
  hasTarget: boolean,
  dry: boolean,
): string[] {
  const verb = (done: string, would: string): string => (dry ? `would ${would}` : done);
  const lines = [
    ...startup.repaired.map(
      (r) =>
        `startup cleanup: ${verb('repaired', 'repair')} row ${r} (its image is on the engine by digest: no download)`,
    ),
    ...startup.deleted.map((d) => `startup cleanup: ${verb('deleted', 'delete')} row ${d}`),
    ...idleRemoved.map((id) => `idle cleanup: ${verb('removed', 'remove')} image ${id} (${DANGLING})`),
  ];
  if (idleSkipped !== undefined)
    lines.push(`idle cleanup: ${verb('skipped', 'be skipped')} (${idleSkipped}; apply runs them)`);
  else if (!hasTarget)
    lines.push(
      'idle cleanup: nothing removed: the device has no target yet, and an unknown target removes nothing',
    );
  if (lines.length === 0)
    lines.push(dry ? 'nothing to clean up' : 'nothing to clean up: nothing was changed');
  return lines;
}
