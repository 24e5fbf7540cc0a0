import { z } from 'zod';

import { CRASH_POINTS } from '../../core/ports/crash-points.js';
import { commitSchema, ownDependentSchema, ownTargetSchema } from '../../core/target/parse-target.js';

/**
 * The shape of a scenario file (YAML or JSON) before symbols are resolved; docs/scenario-format.md
 * describes it. Every object is strict so a typo is an error, not a silently ignored key. Shorthands
 * (a bare symbol for an engine image, `- restart` for `- restart: {}`) are expanded by preprocessing
 * rather than unions, so zod reports problems against one shape with a useful path.
 */

const count = z.number().int().nonnegative();
const cloudId = z.number().int().nonnegative();
const name = z.string().min(1);
const commit = commitSchema;

/** `key:` with nothing after it reads as null; for no-argument steps that means `{}`. */
const orEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? {} : v), schema);
/** A bare string stands for `{ [key]: string }`. */
const stringAs = <T extends z.ZodType>(key: string, schema: T) =>
  z.preprocess((v) => (typeof v === 'string' ? { [key]: v } : v), schema);

const noArgs = orEmpty(z.strictObject({}));

export const configSchema = z.strictObject({
  deltas: z.boolean().optional(),
  engineDeltas: z.boolean().optional(),
  diskLimit: count.optional(),
  systemApps: z.array(cloudId).optional(),
});

export const imageSchema = z.strictObject({
  repo: name,
  layers: z.array(name).optional(),
  tags: z.array(name).optional(),
  /** Image-ID symbol, image symbol (same ID as that image) or full `sha256:`; default: the image's own symbol. */
  id: name.optional(),
  /** Full manifest digest; default sha256("manifest:" + symbol). */
  digest: name.optional(),
});

export const REFERENCE_MODES = ['digest', 'tag', 'both', 'none'] as const;

/** `{ image, references? }` from the images table, or a raw engine image `{ id, layers, repoTags, repoDigests }`. */
export const engineImageSchema = stringAs(
  'image',
  z.strictObject({
    image: name.optional(),
    references: z.enum(REFERENCE_MODES).optional(),
    id: name.optional(),
    layers: z.array(name).optional(),
    repoTags: z.array(name).optional(),
    repoDigests: z.array(name).optional(),
  }),
);

export const rowSchema = z.strictObject({
  image: name,
  app: cloudId,
  service: name,
  serviceId: cloudId.optional(),
  commit,
  /** The engine image ID (symbol or sha256) or null; default: the image's ID when `image` is a symbol. */
  id: name.nullable().optional(),
  imageId: cloudId.optional(),
  releaseId: cloudId.optional(),
  rowId: cloudId.optional(),
});

export const containerSchema = z.strictObject({
  id: name.optional(),
  image: name,
  running: z.boolean().optional(),
  foreign: z.boolean().optional(),
  service: name.optional(),
  app: cloudId.optional(),
  serviceId: cloudId.optional(),
  commit: commit.optional(),
  locked: z.boolean().optional(),
});

/** Our target format, or `{ file }` naming a target JSON file (balena or ours) next to the scenario. */
export const targetSpecSchema = orEmpty(ownTargetSchema.extend({ file: name.optional() }));

export const applySchema = orEmpty(
  ownTargetSchema.extend({ file: name.optional(), intermediate: targetSpecSchema.optional() }),
);

const containerMatchSchema = stringAs(
  'service',
  z.strictObject({ service: name.optional(), app: cloudId.optional(), id: name.optional() }),
);

export const CONTAINER_ACTIONS = ['stop', 'start', 'remove', 'lock', 'unlock'] as const;

export const ENGINE_FAULT_OPS = ['pull', 'delta', 'remove'] as const;
export const ENGINE_FAULT_ERRORS = [
  'registry-500',
  'registry-404',
  'registry-401',
  'timeout',
  'disk-full',
  'register-layer',
  'source-missing',
] as const;

export const STEP_KINDS = [
  'apply',
  'power-cut',
  'restart',
  'idle',
  'idle-during-pull',
  'container',
  'add-container',
  'wipe-db',
  'delete-rows',
  'set-dependent',
  'engine-fault',
  'engine-remove-image',
] as const;

const NO_ARG_STEPS = new Set(['restart', 'idle', 'wipe-db']);

export const stepSchema = z.preprocess(
  (v) => (typeof v === 'string' && NO_ARG_STEPS.has(v) ? { [v]: {} } : v),
  z.strictObject({
    apply: applySchema.optional(),
    'power-cut': z
      .strictObject({
        at: z.enum(CRASH_POINTS),
        match: name.optional(),
        matchText: name.optional(),
        occurrence: z.number().int().positive().optional(),
        resume: z.boolean().optional(),
      })
      .optional(),
    restart: noArgs.optional(),
    idle: noArgs.optional(),
    /** Without `image`: while whichever pull is in flight. */
    'idle-during-pull': z.strictObject({ image: name.optional(), afterLayers: count.optional() }).optional(),
    container: z
      .strictObject({
        stop: containerMatchSchema.optional(),
        start: containerMatchSchema.optional(),
        remove: containerMatchSchema.optional(),
        lock: containerMatchSchema.optional(),
        unlock: containerMatchSchema.optional(),
      })
      .optional(),
    'add-container': containerSchema.optional(),
    'wipe-db': noArgs.optional(),
    'delete-rows': orEmpty(z.strictObject({ image: name.optional(), service: name.optional() })).optional(),
    'set-dependent': z.array(ownDependentSchema).optional(),
    'engine-fault': z
      .strictObject({
        op: z.enum(ENGINE_FAULT_OPS),
        error: z.enum(ENGINE_FAULT_ERRORS),
        /** 0: from now on (a persistent fault, like a broken layer store). */
        times: count.optional(),
        image: name.optional(),
      })
      .optional(),
    'engine-remove-image': name.optional(),
  }),
);

export const expectedRowSchema = z.strictObject({
  image: name,
  app: cloudId,
  service: name,
  commit,
  id: name.nullable().optional(),
});

export const expectSchema = z.strictObject({
  present: z.array(name).optional(),
  absent: z.array(name).optional(),
  rows: z.array(expectedRowSchema).optional(),
  bytesDownloadedAtMost: count.optional(),
  diskAtMost: count.optional(),
  peakDiskAtMost: count.optional(),
  noDangling: z.boolean().optional(),
  converged: z.boolean().optional(),
  containers: z
    .array(z.strictObject({ service: name, image: name, running: z.boolean().optional() }))
    .optional(),
  alwaysPresent: z.array(name).optional(),
  neverRemoved: z.array(name).optional(),
});

export const initialSchema = z.strictObject({
  engine: z
    .strictObject({ images: z.array(engineImageSchema).optional(), partialLayers: z.array(name).optional() })
    .optional(),
  rows: z.array(rowSchema).optional(),
  containers: z.array(containerSchema).optional(),
  target: targetSpecSchema.optional(),
  dependent: z.array(ownDependentSchema).optional(),
});

export const scenarioSchema = z.strictObject({
  name,
  description: z.string().optional(),
  source: name.optional(),
  /** Field-failure library metadata: the incident's id, its fault class, the mutants it must catch. */
  id: name.optional(),
  faultClass: name.optional(),
  catches: z.array(name).optional(),
  config: configSchema.optional(),
  layers: z.record(z.string(), count).optional(),
  images: z.record(z.string(), imageSchema).optional(),
  registry: z.array(name).optional(),
  initial: orEmpty(initialSchema).optional(),
  steps: z.array(stepSchema).optional(),
  /** Power cuts before the k-th step of the run (port calls, counted from 1), as random histories make them. */
  cutAtCalls: z.array(z.number().int().positive()).optional(),
  expect: orEmpty(expectSchema).optional(),
});

export type ScenarioSpec = z.output<typeof scenarioSchema>;
export type ImageSpec = z.output<typeof imageSchema>;
export type EngineImageSpec = z.output<typeof engineImageSchema>;
export type RowSpec = z.output<typeof rowSchema>;
export type ContainerSpec = z.output<typeof containerSchema>;
export type TargetSpec = z.output<typeof targetSpecSchema>;
export type StepSpec = z.output<typeof stepSchema>;
export type ExpectSpec = z.output<typeof expectSchema>;
