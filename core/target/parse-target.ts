import { z } from 'zod';

import { isKeeperError } from '../errors.js';
import type { Target, TargetImage, TargetService } from '../model/target.js';
import { normalizeReference } from '../reference/image-reference.js';
import { isBalenaTarget, parseBalenaTarget } from './balena-target.js';
import {
  deriveImageId,
  deriveReleaseId,
  deriveServiceId,
  findServiceIdCollision,
  targetImageOf,
} from './derived-ids.js';
import { formatJsonPath, invalidTarget, targetSchemaError, type JsonPath } from './json-path.js';
import { TargetIds } from './unique-ids.js';
import { commitSchema } from './commit-schema.js';

export { commitSchema };

/**
 * Our own target format: apps with one commit each and a list of services, every cloud ID optional
 * (derived from names when absent, see derived-ids.ts). In a target JSON file `image` is a full
 * reference; scenarios reuse the same shape and also allow image symbols.
 */
const cloudId = z.number().int().nonnegative();
const commit = commitSchema;

export const strategySchema = z.enum(['download-then-kill', 'delete-then-download']);

export const ownServiceSchema = z.strictObject({
  id: cloudId.optional(),
  name: z.string().min(1),
  image: z.string().min(1),
  imageId: cloudId.optional(),
  strategy: strategySchema.optional(),
});

export const ownAppSchema = z.strictObject({
  id: cloudId,
  /** Informational; the core keys apps by ID. */
  name: z.string().optional(),
  commit,
  releaseId: cloudId.optional(),
  services: z.array(ownServiceSchema).optional(),
});

export const ownDependentSchema = z.strictObject({
  app: cloudId,
  service: z.string().min(1),
  serviceId: cloudId.optional(),
  image: z.string().min(1),
  commit,
  imageId: cloudId.optional(),
  releaseId: cloudId.optional(),
});

export const ownTargetSchema = z.strictObject({
  apps: z.array(ownAppSchema).optional(),
  dependent: z.array(ownDependentSchema).optional(),
});

export type OwnService = z.infer<typeof ownServiceSchema>;
export type OwnApp = z.infer<typeof ownAppSchema>;
export type OwnDependent = z.infer<typeof ownDependentSchema>;
export type OwnTarget = z.infer<typeof ownTargetSchema>;

export interface TargetBuildContext {
  /** The normalised reference for an `image` field, or undefined after reporting why there is none. */
  resolveImage(image: string, path: JsonPath): string | undefined;
  report(path: JsonPath, message: string): void;
}

/** Maps a validated own-format target to a Target, filling derived IDs. Problems go to `ctx.report`. */
export function buildOwnTarget(spec: OwnTarget, ctx: TargetBuildContext, base: JsonPath = []): Target {
  const services: TargetService[] = [];
  const ids = new TargetIds();
  (spec.apps ?? []).forEach((app, a) => {
    const releaseId = app.releaseId ?? deriveReleaseId(app.commit);
    const duplicateApp = ids.app(app.id, formatJsonPath([...base, 'apps', a]));
    if (duplicateApp !== undefined) {
      ctx.report([...base, 'apps', a, 'id'], duplicateApp);
      return;
    }
    (app.services ?? []).forEach((service, s) => {
      const path = [...base, 'apps', a, 'services', s];
      const serviceId = service.id ?? deriveServiceId(service.name);
      const duplicate = ids.service(app.id, serviceId, service.name, service.id === undefined);
      if (duplicate !== undefined) {
        const named = duplicate.startsWith('service ');
        ctx.report([...path, named || service.id === undefined ? 'name' : 'id'], duplicate);
        return;
      }
      const name = ctx.resolveImage(service.image, [...path, 'image']);
      if (name === undefined) return;
      services.push({
        name,
        appId: app.id,
        serviceId,
        serviceName: service.name,
        imageId: service.imageId ?? deriveImageId(app.id, serviceId, app.commit),
        releaseId,
        commit: app.commit,
        strategy: service.strategy ?? 'download-then-kill',
      });
    });
  });
  const dependent = buildOwnDependents(spec.dependent ?? [], ctx, [...base, 'dependent']);
  return { services, dependent };
}

/** Dependent images (downloaded for attached devices) in the own format. */
export function buildOwnDependents(
  specs: readonly OwnDependent[],
  ctx: TargetBuildContext,
  base: JsonPath,
): TargetImage[] {
  const images: TargetImage[] = [];
  specs.forEach((spec, i) => {
    const name = ctx.resolveImage(spec.image, [...base, i, 'image']);
    if (name === undefined) return;
    images.push(targetImageOf(name, spec, spec.serviceId ?? deriveServiceId(spec.service)));
  });
  return images;
}

/** Service names of an own-format target whose serviceId is derived rather than given. */
export function derivedServiceNames(spec: OwnTarget): string[] {
  const names: string[] = [];
  for (const app of spec.apps ?? [])
    for (const s of app.services ?? []) if (s.id === undefined) names.push(s.name);
  for (const d of spec.dependent ?? []) if (d.serviceId === undefined) names.push(d.service);
  return names;
}

export type TargetFormat = 'own' | 'balena-v3' | 'balena-v2';

/**
 * Balena v2 has a top-level `local`; our format has `apps`/`dependent` arrays (or is empty); anything
 * else is read as balena v3, a record of device UUIDs.
 */
export function detectTargetFormat(value: unknown): TargetFormat {
  if (!isBalenaTarget(value)) return 'own';
  return typeof value === 'object' && value !== null && 'local' in value ? 'balena-v2' : 'balena-v3';
}

/**
 * A target from an already parsed JSON value, in balena's target-state shape (v3 or v2) or our own.
 * Throws KeeperError('INVALID_TARGET') with one line `<label>: <what is wrong> (at <json path>)`.
 */
export function parseTargetJson(value: unknown, label: string): Target {
  const format = detectTargetFormat(value);
  if (format !== 'own') return parseBalenaTarget(value, { label }).target;

  const parsed = ownTargetSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    throw targetSchemaError(label, [], parsed.error);
  }
  const ctx: TargetBuildContext = {
    resolveImage: (image, path) => {
      // Same rule as scenarios: a bare name is a symbol, and target files have none.
      if (!/[/:@]/.test(image)) {
        throw invalidTarget(
          label,
          path,
          `image '${image}' is a bare name; a target file needs a full reference (such as ${image}:latest)`,
        );
      }
      try {
        return normalizeReference(image);
      } catch (error) {
        if (isKeeperError(error, 'INVALID_REFERENCE')) throw invalidTarget(label, path, error.message, error);
        throw error;
      }
    },
    report: (path, message) => {
      throw invalidTarget(label, path, message);
    },
  };
  const target = buildOwnTarget(parsed.data, ctx);
  const collision = findServiceIdCollision(derivedServiceNames(parsed.data));
  if (collision) {
    const [a, b, id] = collision;
    throw invalidTarget(
      label,
      [],
      `services '${a}' and '${b}' derive the same serviceId ${id}; give one an explicit id`,
    );
  }
  return target;
}
