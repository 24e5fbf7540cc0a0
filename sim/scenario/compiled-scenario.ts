import type { Container } from '../../core/model/container.js';
import type { EngineImage, Layer } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import type { CrashPoint } from '../../core/ports/crash-points.js';
import type { RegistryManifest } from '../../adapters/fake-engine/fake-registry.js';

/**
 * A scenario after loading: every symbol resolved to real references, digests and IDs. The loader
 * (YAML or JSON) produces it; the runner and the simulator consume it. Keep it plain data so it can be
 * written back as a scenario file.
 */
export interface CompiledScenario {
  /** Where it came from, for messages: a path, or `<generated>`. */
  readonly file: string;
  readonly name: string;
  readonly description: string;
  /** Public source of a field failure, if any. */
  readonly source?: string;
  /** Field-failure library: the incident's id (`FB-01`), its fault class, and the mutants (core/mutants.ts) it must fail under. */
  readonly id?: string;
  readonly faultClass?: string;
  readonly catches?: readonly string[];
  readonly config: ScenarioConfig;
  /** What the fake registry serves. */
  readonly registry: readonly RegistryImage[];
  readonly initial: InitialState;
  readonly steps: readonly ScenarioStep[];
  /**
   * Power cuts before the k-th step of the run (counted from 1 over the whole run, recoveries
   * included), on top of the named cuts in `steps`: how a random history's cuts are saved. A cut whose
   * step never comes does not fire. The runner adds RunOptions.cutAtCalls to these.
   */
  readonly cutAtCalls?: readonly number[];
  readonly expect: Expectations;
  /** `sha256:...` (image IDs and digests) to the symbol the file used, for readable traces. */
  readonly symbols: Readonly<Record<string, string>>;
}

export interface ScenarioConfig {
  /** The device asks for deltas (core config). */
  readonly deltas: boolean;
  /** The fake engine can apply deltas (a stock Docker engine cannot). */
  readonly engineDeltas: boolean;
  /** Disk budget of the fake engine in bytes; a pull past it fails with DISK_FULL. */
  readonly diskLimit?: number;
  /** Apps whose rows startup cleanup deletes without touching the engine (the supervisor itself). */
  readonly systemApps: readonly number[];
}

/** What the fake registry serves: one manifest, by repository and digest, with its tags. */
export type RegistryImage = RegistryManifest;

export interface InitialState {
  readonly images: readonly EngineImage[];
  /** Layers of interrupted pulls already on disk. */
  readonly partialLayers: readonly Layer[];
  readonly rows: readonly ImageRow[];
  readonly containers: readonly Container[];
  /** The persisted target, if the device had accepted one. */
  readonly target: Target | null;
  readonly dependent: readonly TargetImage[];
}

export type ScenarioStep =
  | {
      readonly kind: 'apply';
      readonly target: Target;
      readonly intermediate: boolean;
      readonly line?: number;
    }
  /** Clean restart: a fresh core over the durable state, startup cleanup, then apply the persisted target. */
  | { readonly kind: 'restart'; readonly line?: number }
  /**
   * Arms a power cut for the following steps: at the `occurrence`-th time the core reaches `at`
   * (optionally only when the crash point's detail contains `match`). After the cut the device
   * restarts by itself (startup cleanup, then apply of the persisted target).
   */
  | {
      readonly kind: 'power-cut';
      readonly at: CrashPoint;
      readonly match?: string;
      readonly occurrence: number;
      /**
       * Default true: after the restart the device resumes the interrupted target. False: it only runs
       * startup cleanup, and the next step brings the target (the cloud moved on while it was down).
       */
      readonly resume?: boolean;
      readonly line?: number;
    }
  | { readonly kind: 'idle'; readonly line?: number }
  /** Runs an idle tick while the pull of `ref` is in flight, after `afterLayers` layers. */
  | {
      readonly kind: 'idle-during-pull';
      readonly ref: string;
      readonly afterLayers: number;
      readonly line?: number;
    }
  | {
      readonly kind: 'container';
      readonly action: 'stop' | 'start' | 'remove' | 'lock' | 'unlock';
      readonly match: {
        readonly serviceName?: string;
        readonly appId?: number;
        readonly containerId?: string;
      };
      readonly line?: number;
    }
  /** Adds a container (for example one image-keeper does not manage). */
  | { readonly kind: 'add-container'; readonly container: Container; readonly line?: number }
  | { readonly kind: 'wipe-db'; readonly line?: number }
  | {
      readonly kind: 'delete-rows';
      readonly match: { readonly name?: string; readonly serviceName?: string };
      readonly line?: number;
    }
  | { readonly kind: 'set-dependent'; readonly images: readonly TargetImage[]; readonly line?: number }
  /** The next `times` engine operations of this kind fail (optionally only for `ref`). */
  | {
      readonly kind: 'engine-fault';
      readonly op: 'pull' | 'delta' | 'remove';
      readonly error:
        | 'registry-500'
        | 'registry-404'
        | 'registry-401'
        | 'timeout'
        | 'disk-full'
        | 'register-layer'
        | 'source-missing';
      readonly times: number;
      readonly ref?: string;
      readonly line?: number;
    }
  /** Deletes an engine image behind image-keeper's back (a concurrent removal, an engine that lost it). */
  | { readonly kind: 'engine-remove-image'; readonly imageId: string; readonly line?: number };

export interface Expectations {
  /** Image IDs that must be on the engine at the end. */
  readonly present: readonly string[];
  /** Image IDs that must not be on the engine at the end. */
  readonly absent: readonly string[];
  /** When given, the exact set of rows at the end (id ignored). */
  readonly rows?: readonly ExpectedRow[];
  readonly bytesDownloadedAtMost?: number;
  readonly diskAtMost?: number;
  /** Peak disk during the whole run. */
  readonly peakDiskAtMost?: number;
  /** Default true: no dangling images remain. */
  readonly noDangling: boolean;
  /** Default true: the planner emits nothing more at the end. */
  readonly converged: boolean;
  /** Containers at the end: service name to image ID (and running). */
  readonly containers?: readonly {
    readonly serviceName: string;
    readonly imageId: string;
    readonly running?: boolean;
  }[];
  /** Image IDs that must exist at EVERY step of the run (checked after every port call). */
  readonly alwaysPresent: readonly string[];
  /** Image IDs that must never be the subject of a removal attempt. */
  readonly neverRemoved: readonly string[];
}

export interface ExpectedRow {
  readonly name: string;
  readonly appId: number;
  readonly serviceName: string;
  readonly commit: string;
  readonly dockerImageId: string | null;
}
