/**
 * Differential: every bundled scenario a stock Docker engine can express runs twice, on the fakes and
 * on the real adapters (DockerEngine on the private dockerd, SqlJsStateDb on a real file), and must end
 * in the same state: the same images by manifest digest and the same rows (name, app, service, commit,
 * image by digest). The scenario's symbolic images become real hand-built ones with the same layer
 * sharing (support/scenario-on-engine.ts); power cuts at named points run that apply as a real
 * `image-keeper apply` process that SIGKILLs itself there, or, where such a process cannot express the
 * cut (an intermediate apply, a restart, a wipe-db, different cuts at once...), in-process: the keeper's
 * crash-point port throws a power cut and the device restarts over the DB file
 * (support/in-process-power.ts). Each report line names every cut, its kind and why in-process. A scenario with a disk limit runs with the
 * limit and its disk budget expectations dropped, on both sides (a stock engine has no limit to set, and
 * the final state must not depend on it), and its report line says so. Scenarios that need what only
 * the fakes have (deltas, partial layers, injected faults, a lock that changes...) are skipped, and the
 * report says why a stock engine cannot express them.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { runScenario } from '../../sim/runner/run-scenario.js';
import { makeSymbolizer } from '../../sim/runner/symbolizer.js';
import { loadScenarios } from '../../sim/scenario/load-scenario.js';
import { digestOf, repositoryOf } from '../../core/reference/image-reference.js';
import { applyWithCrashHook } from './support/apply-with-crash-hook.js';
import { runScenarioOnEngine, type FiredCut } from './support/engine-scenario-runner.js';
import { finalStateOf } from './support/final-state.js';
import { deleteManifest } from './support/hand-built-images.js';
import { PrivateEngine } from './support/private-engine.js';
import { PrivateRegistry } from './support/private-registry.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { resetEngine } from './support/reset-engine.js';
import {
  engineSupportOf,
  foreignReferences,
  pushScenarioImages,
  rewriteScenario,
  withoutDiskBudget,
} from './support/scenario-on-engine.js';

const info = inject('engine');
const docker = PrivateEngine.attach(info.engine).client(60_000);
const SCENARIO_DIRS = ['scenarios/basics', 'scenarios/field'].filter((dir) => existsSync(dir));
const scenarios = (await Promise.all(SCENARIO_DIRS.map((dir) => loadScenarios(dir)))).flat();
const report: string[] = [];

/** The scenarios' images go to a registry of their own: the shared one serves the catalogue only. */
let registry: PrivateRegistry;

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  registry = await PrivateRegistry.start({ dir: join(info.rootDir, 'r-differential') });
});

afterAll(async () => {
  await resetEngine(docker);
  await registry?.stop();
  const lines = [...report].sort().map((l) => `  ${l}`);
  console.log(`[differential] fakes vs real engine + sql.js, per scenario:\n${lines.join('\n')}`);
});

describe('fakes and the real engine end in the same state', () => {
  scenarios.forEach((original, index) => {
    const label = basename(original.file).replace(/\.(ya?ml|json)$/, '');
    const scenario = withoutDiskBudget(original);
    const dropped =
      scenario !== original
        ? '; disk limit and disk budget expectations dropped (a stock engine has no limit)'
        : '';
    const reasons = engineSupportOf(scenario);
    if (reasons.length > 0) {
      report.push(`${label}: SKIPPED (${reasons.join('; ')})${dropped}`);
      test.skip(`${label}: ${reasons.join('; ')}`, () => undefined);
      return;
    }
    test(label, async () => {
      const mapping = await pushScenarioImages(scenario, registry.host);
      const rewritten = rewriteScenario(scenario, mapping);
      expect(foreignReferences(rewritten, registry.host)).toEqual([]);
      const sym = makeSymbolizer(rewritten.symbols);

      const fake = await runScenario(rewritten);
      // The rewrite keeps the scenario's meaning: its own expectations still hold on the fakes.
      expect(fake.failures, fake.trace.join('\n')).toEqual([]);
      const engineState = fake.device.engine.durableState();
      const fakeFinal = finalStateOf(
        engineState.images,
        fake.device.db.peek().rows,
        engineState.containers,
        sym,
      );

      await resetEngine(docker);
      const workDir = join(info.rootDir, `differential-${index}`);
      mkdirSync(workDir, { recursive: true });
      const real = await runScenarioOnEngine(rewritten, {
        socketPath: info.socketPath,
        docker,
        workDir,
        applyProcess: applyWithCrashHook,
        symbolize: sym,
        archives: mapping.archives,
        diffIds: mapping.diffIds,
        afterPreload: async () => {
          for (const ref of mapping.unserved)
            await deleteManifest(registry.host, repositoryOf(ref), digestOf(ref)!);
        },
      });
      const same =
        JSON.stringify([real.final.images, real.final.rows]) ===
        JSON.stringify([fakeFinal.images, fakeFinal.rows]);
      const containers = JSON.stringify(real.final.containers) === JSON.stringify(fakeFinal.containers);
      report.push(
        `${label}: ${same ? 'EQUAL' : 'DIFFERENT'} (${real.final.images.length} image(s), ${real.final.rows.length} row(s)` +
          `${containers ? '' : '; containers differ'}${dropped})` +
          (real.cuts.length > 0 ? ` cuts: ${describeCuts(real.cuts).map(sym).join(' | ')}` : '') +
          (real.notes.length > 0 ? ` notes: ${real.notes.map(sym).join(' | ')}` : ''),
      );
      expect(real.errors.map(sym)).toEqual([]);
      expect(real.final.images).toEqual(fakeFinal.images);
      expect(real.final.rows).toEqual(fakeFinal.rows);
    });
  });
});

/** `SIGKILL <cut>` or `in-process <cut> (<why>)`, a run of equal ones once with its count. */
function describeCuts(cuts: readonly FiredCut[]): string[] {
  const lines = cuts.map((c) => `${c.kind} ${c.label}${c.why === undefined ? '' : ` (${c.why})`}`);
  const out: string[] = [];
  for (let i = 0; i < lines.length;) {
    let n = 1;
    while (lines[i + n] === lines[i]) n++;
    out.push(n > 1 ? `${lines[i]} x${n}` : lines[i]!);
    i += n;
  }
  return out;
}
