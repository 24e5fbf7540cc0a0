import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { isKeeperError } from '../core/errors.js';
import type { KeeperErrorCode } from '../core/errors.js';
import type { CliIo } from './cli-io.js';
import { PROCESS_IO } from './cli-io.js';
import type { ApplyFlags } from './apply-command.js';
import { applyCommand } from './apply-command.js';
import { captureCommand } from './capture-command.js';
import type { CleanupFlags } from './cleanup-command.js';
import { cleanupCommand } from './cleanup-command.js';
import type { DeviceFlags } from './device-options.js';
import { withDeviceFlags } from './device-options.js';
import { EXIT } from './exit-codes.js';
import { runCommand } from './run-command.js';
import { simCommand } from './sim-command.js';
import type { StatusFlags } from './status-command.js';
import { statusCommand } from './status-command.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const BAD_INPUT: readonly KeeperErrorCode[] = [
  'INVALID_SCENARIO',
  'INVALID_TARGET',
  'INVALID_REFERENCE',
  'USAGE',
  'DB_CORRUPT',
];

/** Maps an error to its exit code; every error is printed as one line naming the problem. */
export function exitCodeOf(error: unknown): number {
  if (!isKeeperError(error)) return EXIT.FAILED;
  if (BAD_INPUT.includes(error.code)) return EXIT.BAD_INPUT;
  if (error.code === 'DB_LOCKED') return EXIT.LOCKED;
  if (
    error.code === 'INVARIANT_VIOLATED' ||
    error.code === 'NOT_CONVERGED' ||
    error.code === 'EXPECTATION_FAILED'
  )
    return EXIT.FAILED;
  return EXIT.ENVIRONMENT;
}

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('image-keeper')
    .description("Keeps a device's container images: crash-safe pulls, reference counting, both cleanups.")
    .version(VERSION, '-V, --version', 'print the version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.trimEnd()),
      writeErr: (s) => io.err(s.trimEnd()),
      // Usage errors read like every other error: one line, `image-keeper: USAGE: ...`.
      outputError: (s) =>
        io.err(
          `image-keeper: USAGE: ${s
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')
            .trim()}`,
        ),
    });

  withDeviceFlags(program.command('apply'))
    .description(
      "on a device: startup cleanup, converge the engine's images to the target, idle cleanup; exit 0 when converged",
    )
    .argument(
      '[target]',
      "target-state JSON (balena v3/v2 or image-keeper's own format); without it, the persisted target (what a restart does)",
    )
    .option(
      '--recover-db',
      'if the state DB is corrupt, move it aside (<db>.corrupt-<time>) and start empty: images on the engine are adopted by digest',
    )
    .option(
      '--pull-timeout <seconds>',
      'cut a pull whose stream stays silent this long (default 300); it is retried',
    )
    .option('--json', 'JSON lines even on a terminal (the default when stdout is not a terminal)')
    .action(async (target: string | undefined, options: ApplyFlags) => {
      setExit(await applyCommand(target, options, io));
    });

  withDeviceFlags(program.command('status'))
    .description(
      "on a device, read-only: rows, engine images and why each is needed, containers, the planner's next steps, disk use",
    )
    .option('--json', 'one JSON object instead of text')
    .action(async (options: StatusFlags) => {
      setExit(await statusCommand(options, io));
    });

  withDeviceFlags(program.command('cleanup'))
    .description('on a device: startup cleanup and idle cleanup only, printing what was removed and why')
    .option('--dry-run', 'print what would be removed and why; change nothing')
    .option('--recover-db', 'if the state DB is corrupt, move it aside and start empty (see apply --help)')
    .action(async (options: CleanupFlags) => {
      setExit(await cleanupCommand(options, io));
    });

  withDeviceFlags(program.command('capture'))
    .description(
      'on a device, read-only: write its rows, engine images, containers and persisted target as a scenario that `run` replays on the fakes',
    )
    .argument('<out>', 'scenario file to write (YAML)')
    .action(async (out: string, options: DeviceFlags) => {
      setExit(await captureCommand(out, options, io));
    });

  program
    .command('run')
    .description(
      'replay scenario files (or folders of them) on the in-memory fakes and check their expectations',
    )
    .argument('<paths...>', 'scenario files or folders')
    .option('--mutant <name>', 'test only: run with one deliberately broken behaviour')
    .option('-q, --quiet', 'print traces only for failing scenarios')
    .option('--db <kind>', "the device's image table: memory (default) or sqljs")
    .action(async (paths: string[], options: { mutant?: string; quiet?: boolean; db?: string }) => {
      setExit(await runCommand(paths, options, io));
    });

  program
    .command('sim')
    .description('power-cut simulation: exhaustive crash sweeps of scenarios and random fault histories')
    .argument('[scenarios...]', 'scenario files or folders to sweep')
    .option(
      '--exhaustive',
      'cut power at every distinct step of each scenario (port calls; between layers of a pull)',
    )
    .option('--pairs', 'with --exhaustive: also a second cut at every point of each recovery')
    .option('--runs <n>', 'random histories to run (default 200 without scenarios, 0 with)')
    .option('--seed <n>', 'seed of all randomness (default: from the clock, printed)')
    .option('--path <path>', 'replay one counterexample: with the --seed and --runs printed next to it')
    .option('--minutes <m>', 'keep generating random histories for this long')
    .option(
      '--shard <i/n>',
      'take shard i of n, 1-based like vitest (1/2 and 2/2 make the whole): a deterministic split of crash states and history batches',
    )
    .option(
      '--workers <n>',
      'fork n worker processes, one shard each, merged into one report (default: one per core)',
    )
    .option('--mutant <name>', 'test only: run with one deliberately broken behaviour')
    .option('--save-failures <dir>', 'where failing histories are written as scenario files', 'sim-failures')
    .option(
      '--db <kind>',
      "the device's image table: memory (default) or sqljs (cuts also inside DB persistence)",
    )
    .option('--json', 'print the totals (and the seed) as one JSON line')
    .addOption(
      new Option(
        '--worker-report',
        "internal: print this shard's findings for the parent process",
      ).hideHelp(),
    )
    .action(async (paths: string[], options: Record<string, string | boolean>) => {
      setExit(await simCommand(paths, options, io));
    });
  return program;
}

export async function main(argv: readonly string[], io: CliIo = PROCESS_IO): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.BAD_INPUT;
    const message = (error as Error).message ?? String(error);
    const code = isKeeperError(error) ? error.code : 'ERROR';
    // Several scenario files or problems can fail at once: one line each, each naming file:line:col.
    // Any other error is one line, whatever its message holds.
    const lines = code === 'INVALID_SCENARIO' ? message.split('\n') : [message.replace(/\s*\n\s*/g, ' ')];
    for (const line of lines) io.err(`image-keeper: ${code}: ${line}`);
    if (!isKeeperError(error)) io.err((error as Error).stack ?? '');
    return exitCodeOf(error);
  }
  return code;
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/cli\//, '/cli/'));
if (invokedDirectly) {
  // A reader that went away (`| head`) is not an error of ours.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  process.exitCode = await main(process.argv.slice(2));
}
