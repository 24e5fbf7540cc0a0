import { isMutant, MUTANTS } from '../core/mutants.js';
import type { Mutant } from '../core/mutants.js';
import { KeeperError } from '../core/errors.js';
import { runScenario } from '../sim/runner/run-scenario.js';
import { loadScenarios } from '../sim/scenario/load-scenario.js';
import type { CompiledScenario } from '../sim/scenario/compiled-scenario.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';

export interface RunCommandOptions {
  readonly mutant?: string;
  /** The device's image table: memory (default) or sqljs (replays a `sim --db sqljs` failure). */
  readonly db?: string;
  readonly quiet?: boolean;
}

/** One line of the field-library table. */
interface LibraryRow {
  readonly id: string;
  readonly faultClass: string;
  readonly ok: boolean;
  /** Each listed mutant and whether the scenario failed under it; undefined when not checked (--mutant). */
  readonly catches: readonly { readonly mutant: string; readonly caught: boolean }[] | undefined;
}

/**
 * `image-keeper run <file or folder>...`: replays scenarios on the fakes, prints a step-by-step trace
 * and the final state, checks the expectations. Exit 1 if any scenario fails.
 *
 * Scenarios of the field-failure library (with `id`, `faultClass` or `catches`) are also run once under
 * each mutant they list, which must make them fail: a mutant that is not caught fails the scenario. A
 * table of them (id, fault class, result, mutants caught) follows the traces.
 */
export async function runCommand(
  paths: readonly string[],
  options: RunCommandOptions,
  io: CliIo,
): Promise<number> {
  if (options.mutant !== undefined && !isMutant(options.mutant)) {
    throw new KeeperError(
      'USAGE',
      `unknown mutant '${options.mutant}'; known: ${Object.keys(MUTANTS).join(', ')}`,
    );
  }
  const mutant = options.mutant as Mutant | undefined;
  if (options.db !== undefined && options.db !== 'memory' && options.db !== 'sqljs') {
    throw new KeeperError('USAGE', `--db wants memory or sqljs, got '${options.db}'`);
  }
  const persistence = options.db === 'sqljs' ? 'sqljs' : 'memory';
  const scenarios: CompiledScenario[] = [];
  for (const path of paths) scenarios.push(...(await loadScenarios(path)));
  let failed = 0;
  const library: LibraryRow[] = [];
  for (const scenario of scenarios) {
    const result = await runScenario(scenario, { mutant, persistence });
    // Under --mutant the run is the mutation check itself; the listed mutants are checked without one.
    const catches = mutant === undefined ? await mutantsCaught(scenario) : undefined;
    const missed = (catches ?? []).filter((c) => !c.caught).map((c) => c.mutant);
    const ok = result.ok && missed.length === 0;
    if (!options.quiet || !result.ok) {
      for (const line of result.trace) io.out(line);
      io.out('final state:');
      for (const line of result.final) io.out(`  ${line}`);
    }
    if (ok) {
      io.out(`PASS ${scenario.name} (${scenario.file})`);
    } else {
      failed++;
      io.out(`FAIL ${scenario.name} (${scenario.file})`);
      for (const failure of result.failures) io.out(`  - ${failure}`);
      for (const m of missed)
        io.out(`  - mutant ${m} is listed in catches but not caught: the scenario passes under it`);
    }
    if (!options.quiet) io.out('');
    if (isLibraryScenario(scenario)) {
      library.push({ id: scenario.id ?? scenario.name, faultClass: scenario.faultClass ?? '-', ok, catches });
    }
  }
  if (library.length > 0) printLibraryTable(library, mutant, io);
  io.out(`${scenarios.length - failed} passed, ${failed} failed`);
  return failed > 0 ? EXIT.FAILED : EXIT.OK;
}

function isLibraryScenario(scenario: CompiledScenario): boolean {
  return scenario.id !== undefined || scenario.faultClass !== undefined || scenario.catches !== undefined;
}

/** Runs the scenario under each mutant it lists; caught means the run fails. */
export async function mutantsCaught(
  scenario: CompiledScenario,
): Promise<{ mutant: string; caught: boolean }[]> {
  const out: { mutant: string; caught: boolean }[] = [];
  for (const mutant of scenario.catches ?? []) {
    // The loader only accepts known mutants; a hand-built scenario may not have gone through it.
    if (!isMutant(mutant))
      throw new KeeperError('INVALID_SCENARIO', `${scenario.file}: unknown mutant '${mutant}' in catches`);
    const result = await runScenario(scenario, { mutant, trace: false });
    out.push({ mutant, caught: !result.ok });
  }
  return out;
}

function printLibraryTable(rows: readonly LibraryRow[], mutant: Mutant | undefined, io: CliIo): void {
  const header = { id: 'id', faultClass: 'fault class', result: 'result', catches: 'catches' };
  const cells = rows.map((r) => ({
    id: r.id,
    faultClass: r.faultClass,
    result: r.ok ? 'PASS' : 'FAIL',
    catches:
      r.catches === undefined
        ? `(not checked under --mutant ${mutant ?? ''})`
        : r.catches.length === 0
          ? '-'
          : r.catches.map((c) => `${c.mutant} ${c.caught ? 'caught' : 'MISSED'}`).join(', '),
  }));
  const width = (key: 'id' | 'faultClass' | 'result'): number =>
    Math.max(header[key].length, ...cells.map((c) => c[key].length));
  const line = (c: typeof header): string =>
    `${c.id.padEnd(width('id'))}  ${c.faultClass.padEnd(width('faultClass'))}  ${c.result.padEnd(width('result'))}  ${c.catches}`.trimEnd();
  io.out('');
  io.out(`field library${mutant ? ` [mutant ${mutant}]` : ''}:`);
  io.out(line(header));
  io.out(
    line({
      id: '-'.repeat(width('id')),
      faultClass: '-'.repeat(width('faultClass')),
      result: '-'.repeat(width('result')),
      catches: '-'.repeat(7),
    }),
  );
  for (const c of cells) io.out(line(c));
  const missed = rows.flatMap((r) => (r.catches ?? []).filter((c) => !c.caught));
  const listed = rows.flatMap((r) => r.catches ?? []);
  if (mutant === undefined)
    io.out(
      `(scenario, mutant) pairs listed: ${listed.length}, caught: ${listed.length - missed.length}, missed: ${missed.length}`,
    );
  io.out('');
}
