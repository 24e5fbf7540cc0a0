/**
 * What the engine globalSetup hands to tests: through vitest's provide/inject ("engine") and, for
 * child processes such as CLI tests, as JSON in the file named by IMAGE_KEEPER_ENGINE_INFO.
 */
import { readFileSync } from 'node:fs';
import type { PrivateEngineState } from './private-engine.js';
import type { PrivateRegistryState } from './private-registry.js';
import type { TestImageCatalogue } from './test-images.js';

/** Environment variable naming the JSON file that holds the EngineInfo. */
export const ENGINE_INFO_ENV = 'IMAGE_KEEPER_ENGINE_INFO';

export interface EngineInfo {
  /** The run's private directory (os.tmpdir()/ik-engine-XXXXXX). */
  readonly rootDir: string;
  /** "unix://<socketPath>", also exported as DOCKER_HOST. */
  readonly dockerHost: string;
  readonly socketPath: string;
  readonly dataRoot: string;
  readonly storageDriver: string;
  /** Enough to PrivateEngine.attach() from a worker (kill9/restart). */
  readonly engine: PrivateEngineState;
  readonly registry: PrivateRegistryState & { readonly url: string };
  readonly images: TestImageCatalogue;
  /** Path of the JSON copy of this object. */
  readonly infoFile: string;
  /** How long the globalSetup took, by phase, in ms. */
  readonly timings: Readonly<Record<string, number>>;
}

declare module 'vitest' {
  interface ProvidedContext {
    engine: EngineInfo;
  }
}

/** Reads the EngineInfo JSON that globalSetup wrote (default: the file named by IMAGE_KEEPER_ENGINE_INFO). */
export function readEngineInfo(file: string | undefined = process.env[ENGINE_INFO_ENV]): EngineInfo {
  if (!file)
    throw new Error(`${ENGINE_INFO_ENV} is not set: run under the "engine" vitest project's globalSetup`);
  return JSON.parse(readFileSync(file, 'utf8')) as EngineInfo;
}
