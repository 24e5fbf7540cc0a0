import type { Mutant } from './mutants.js';

export interface KeeperConfig {
  /** Ask for deltas when the engine supports them and a delta source exists. */
  readonly deltas: boolean;
  /** Apps whose rows startup cleanup deletes (the supervisor's own images are not app images). */
  readonly systemApps: readonly number[];
  /** Transient registry errors are retried this many times per pull, with exponential backoff. */
  readonly pullRetries: number;
  readonly retryBaseMs: number;
  /** A failing delta is retried this many times before falling back to a regular pull. */
  readonly deltaRetries: number;
  /** apply() gives up with NOT_CONVERGED after this many passes. */
  readonly maxPasses: number;
  /** Test-only: one deliberately broken behaviour (see mutants.ts). */
  readonly mutant?: Mutant;
}

export const DEFAULT_CONFIG: KeeperConfig = {
  deltas: false,
  systemApps: [],
  pullRetries: 3,
  retryBaseMs: 1000,
  deltaRetries: 3,
  maxPasses: 20,
};
