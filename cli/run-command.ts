import { isMutant, MUTANTS } from '../core/mutants.js';
import { KeeperError } from '../core/errors.js';
import { runScenario } from '../sim/runner/run-scenario.js';
import { loadScenarios } from '../sim/scenario/load-scenario.js';
import type { CompiledScenario } from '../sim/scenario/compiled-scenario.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';

export interface RunCommandOptions {
  readonly mutant?: string;
  readonly quiet?: boolean;
}

/**
 * `image-keeper run <file or folder>...`: replays scenarios on the fakes, prints a step-by-step trace
 * and the final state, checks the expectations. Exit 1 if any scenario fails.
 */
export async function runCommand(paths: readonly string[], options: RunCommandOptions, io: CliIo): Promise<number> {
  if (options.mutant !== undefined && !isMutant(options.mutant)) {
    throw new KeeperError('USAGE', `unknown mutant '${options.mutant}'; known: ${Object.keys(MUTANTS).join(', ')}`);
  }
  const scenarios: CompiledScenario[] = [];
  for (const path of paths) scenarios.push(...(await loadScenarios(path)));
  let failed = 0;
  for (const scenario of scenarios) {
    const result = await runScenario(scenario, { mutant: options.mutant as never });
    if (!options.quiet || !result.ok) {
      for (const line of result.trace) io.out(line);
      io.out('final state:');
      for (const line of result.final) io.out(`  ${line}`);
    }
    if (result.ok) {
      io.out(`PASS ${scenario.name} (${scenario.file})`);
    } else {
      failed++;
      io.out(`FAIL ${scenario.name} (${scenario.file})`);
      for (const failure of result.failures) io.out(`  - ${failure}`);
    }
    if (!options.quiet) io.out('');
  }
  io.out(`${scenarios.length - failed} passed, ${failed} failed`);
  return failed > 0 ? EXIT.FAILED : EXIT.OK;
}
