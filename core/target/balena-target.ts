import { z } from 'zod';

import { isKeeperError } from '../errors.js';
import type { Target, TargetImage, TargetService, UpdateStrategy } from '../model/target.js';
import { normalizeReference } from '../reference/image-reference.js';
import { deriveImageId, deriveReleaseId, deriveServiceId } from './derived-ids.js';
import { formatJsonPath, invalidTarget, targetSchemaError, type JsonPath } from './json-path.js';
import { commitSchema } from './commit-schema.js';
import { TargetIds } from './unique-ids.js';

/**
 * Balena's device target state, as the supervisor receives it, mapped to our Target. Pure: the caller
 * has already parsed the JSON. Only the fields image-keeper needs are validated; the rest (environment,
 * volumes, networks, composition, config) is allowed and ignored, so real payloads load unchanged.
 *
 * v3: `{ <deviceUuid>: { name, apps: { <appUuid>: { id, name, class?, is_host?, releases: { <commit>:
 *       { id, services: { <name>: { id, image_id, image, labels? } } } } } } } }`
 * v2: `{ local: { apps: { <appId>: { appId?, name, commit, releaseId, services: { <serviceId>:
 *       { serviceName, image, imageId, labels? } } } } }, dependent?: { apps: { <appId>: { image, commit, ... } } } }`
 */

export const UPDATE_STRATEGY_LABEL = 'io.balena.update.strategy';

export interface SkippedApp {
  readonly appUuid: string;
  readonly name: string;
  readonly reason: string;
}

export interface BalenaTargetResult {
  readonly format: 'v3' | 'v2';
  readonly target: Target;
  /** Apps that are not image-keeper's to manage (supervisor, host OS, blocks), with why. */
  readonly skipped: readonly SkippedApp[];
}

export interface BalenaTargetOptions {
  /** Names the input in error messages. */
  readonly label?: string;
  /** The local device when a v3 state lists several; the others' apps become dependent images. */
  readonly deviceUuid?: string;
}

/** Cloud IDs are numbers; some exports carry them as numeric strings. */
const numericId = z.preprocess(
  (v) => (typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v),
  z.number().int().nonnegative(),
);
const labels = z.record(z.string(), z.string());

const v3Service = z.looseObject({
  id: numericId,
  image_id: numericId,
  image: z.string().min(1),
  labels: labels.optional(),
});
const v3Release = z.looseObject({ id: numericId, services: z.record(z.string(), z.unknown()).optional() });
const v3App = z.looseObject({
  id: numericId,
  name: z.string(),
  class: z.enum(['fleet', 'app', 'block']).optional(),
  is_host: z.boolean().optional(),
  releases: z.record(z.string(), z.unknown()).optional(),
});
const v3Device = z.looseObject({ name: z.string().optional(), apps: z.record(z.string(), z.unknown()) });
const v3State = z.record(z.string(), z.unknown());

const v2Service = z.looseObject({
  serviceName: z.string().min(1),
  image: z.string().min(1),
  imageId: numericId,
  serviceId: numericId.optional(),
  labels: labels.optional(),
});
const v2App = z.looseObject({
  appId: numericId.optional(),
  name: z.string().optional(),
  commit: commitSchema.optional(),
  releaseId: numericId.optional(),
  services: z.record(z.string(), z.unknown()).optional(),
});
const v2DependentApp = z.looseObject({
  name: z.string().optional(),
  image: z.string().min(1).optional(),
  commit: commitSchema.optional(),
  releaseId: numericId.optional(),
  imageId: numericId.optional(),
});
const v2State = z.looseObject({
  local: z.looseObject({ name: z.string().optional(), apps: z.record(z.string(), z.unknown()).optional() }),
  dependent: z.looseObject({ apps: z.record(z.string(), z.unknown()).optional() }).optional(),
});

/** Whether the value looks like balena's target state rather than our own format. */
export function isBalenaTarget(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.includes('local') || (keys.length > 0 && !keys.includes('apps') && !keys.includes('dependent'));
}

/** Maps balena target state (v3, or v2 when it has `local`) to a Target. Throws INVALID_TARGET. */
export function parseBalenaTarget(value: unknown, options: BalenaTargetOptions = {}): BalenaTargetResult {
  const label = options.label ?? 'target';
  const parser = new Parser(label);
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'local' in value) {
    return parser.v2(value);
  }
  return parser.v3(value, options.deviceUuid);
}

/** Only two strategies change what image-keeper does; the others behave like the default here. */
export function strategyFromLabels(
  serviceLabels: Readonly<Record<string, string>> | undefined,
): UpdateStrategy {
  return serviceLabels?.[UPDATE_STRATEGY_LABEL] === 'delete-then-download'
    ? 'delete-then-download'
    : 'download-then-kill';
}

class Parser {
  constructor(private readonly label: string) {}

  v3(value: unknown, deviceUuid: string | undefined): BalenaTargetResult {
    const devices = this.check(v3State, value, []);
    const uuids = Object.keys(devices);
    if (uuids.length === 0) throw invalidTarget(this.label, [], 'target state names no device');
    let local: string;
    if (deviceUuid !== undefined) {
      if (!uuids.includes(deviceUuid)) {
        throw invalidTarget(this.label, [], `device '${deviceUuid}' is not in the target state`);
      }
      local = deviceUuid;
    } else if (uuids.length === 1 && uuids[0] !== undefined) {
      local = uuids[0];
    } else {
      throw invalidTarget(
        this.label,
        [],
        `target state names ${uuids.length} devices; say which one is local`,
      );
    }

    const skipped: SkippedApp[] = [];
    const services: TargetService[] = [];
    const dependent: TargetImage[] = [];
    for (const uuid of uuids) {
      const device = this.check(v3Device, devices[uuid], [uuid]);
      // Only the local device's apps run here; another device may run the same app as this one.
      const ids = uuid === local ? new TargetIds() : undefined;
      for (const [appUuid, rawApp] of Object.entries(device.apps)) {
        const found = this.v3App(rawApp, [uuid, 'apps', appUuid], appUuid, skipped, ids);
        if (uuid === local) services.push(...found);
        // Dependent images are only downloaded, never run here, so they carry no strategy.
        else dependent.push(...found.map(({ strategy: _strategy, ...image }) => image));
      }
    }
    return { format: 'v3', target: { services, dependent }, skipped };
  }

  private v3App(
    raw: unknown,
    path: JsonPath,
    appUuid: string,
    skipped: SkippedApp[],
    ids: TargetIds | undefined,
  ): TargetService[] {
    const app = this.check(v3App, raw, path);
    const appClass = app.class ?? 'fleet';
    if (appClass !== 'fleet') {
      skipped.push({ appUuid, name: app.name, reason: `class '${appClass}' is not a fleet app` });
      return [];
    }
    if (app.is_host === true) {
      skipped.push({ appUuid, name: app.name, reason: 'host OS app (is_host)' });
      return [];
    }
    this.unique(ids?.app(app.id, formatJsonPath(path)), [...path, 'id']);
    const commits = Object.keys(app.releases ?? {});
    if (commits.length > 1) {
      throw invalidTarget(
        this.label,
        [...path, 'releases'],
        `app has ${commits.length} releases; a target names at most one`,
      );
    }
    const commit = commits[0];
    if (commit === undefined) return [];
    if (commit === '')
      throw invalidTarget(this.label, [...path, 'releases'], 'a release commit must not be empty');
    const releasePath = [...path, 'releases', commit];
    const release = this.check(v3Release, app.releases?.[commit], releasePath);
    const services: TargetService[] = [];
    for (const [serviceName, rawService] of Object.entries(release.services ?? {})) {
      const servicePath = [...releasePath, 'services', serviceName];
      const service = this.check(v3Service, rawService, servicePath);
      this.unique(ids?.service(app.id, service.id, serviceName, false), [...servicePath, 'id']);
      services.push({
        name: this.reference(service.image, [...servicePath, 'image']),
        appId: app.id,
        serviceId: service.id,
        serviceName,
        imageId: service.image_id,
        releaseId: release.id,
        commit,
        strategy: strategyFromLabels(service.labels),
      });
    }
    return services;
  }

  v2(value: unknown): BalenaTargetResult {
    const state = this.check(v2State, value, []);
    const services: TargetService[] = [];
    const ids = new TargetIds();
    for (const [key, rawApp] of Object.entries(state.local.apps ?? {})) {
      const path = ['local', 'apps', key];
      const app = this.check(v2App, rawApp, path);
      const appId = app.appId ?? this.keyId(key, path, 'app');
      this.unique(ids.app(appId, formatJsonPath(path)), app.appId === undefined ? path : [...path, 'appId']);
      const entries = Object.entries(app.services ?? {});
      if (entries.length === 0) continue;
      if (app.commit === undefined)
        throw invalidTarget(this.label, [...path, 'commit'], "missing required key 'commit'");
      if (app.releaseId === undefined) {
        throw invalidTarget(this.label, [...path, 'releaseId'], "missing required key 'releaseId'");
      }
      for (const [serviceKey, rawService] of entries) {
        const servicePath = [...path, 'services', serviceKey];
        const service = this.check(v2Service, rawService, servicePath);
        const serviceId = service.serviceId ?? this.keyId(serviceKey, servicePath, 'service');
        const duplicate = ids.service(appId, serviceId, service.serviceName, false);
        const where = duplicate?.startsWith('service ')
          ? 'serviceName'
          : service.serviceId === undefined
            ? undefined
            : 'serviceId';
        this.unique(duplicate, where === undefined ? servicePath : [...servicePath, where]);
        services.push({
          name: this.reference(service.image, [...servicePath, 'image']),
          appId,
          serviceId,
          serviceName: service.serviceName,
          imageId: service.imageId,
          releaseId: app.releaseId,
          commit: app.commit,
          strategy: strategyFromLabels(service.labels),
        });
      }
    }
    // Legacy dependent apps are single-image: one image per app, named after the app.
    const dependent: TargetImage[] = [];
    for (const [key, rawApp] of Object.entries(state.dependent?.apps ?? {})) {
      const path = ['dependent', 'apps', key];
      const app = this.check(v2DependentApp, rawApp, path);
      if (app.image === undefined) continue;
      if (app.commit === undefined)
        throw invalidTarget(this.label, [...path, 'commit'], "missing required key 'commit'");
      const appId = this.keyId(key, path, 'app');
      const serviceName = app.name ?? String(appId);
      const serviceId = deriveServiceId(serviceName);
      dependent.push({
        name: this.reference(app.image, [...path, 'image']),
        appId,
        serviceId,
        serviceName,
        imageId: app.imageId ?? deriveImageId(appId, serviceId, app.commit),
        releaseId: app.releaseId ?? deriveReleaseId(app.commit),
        commit: app.commit,
      });
    }
    return { format: 'v2', target: { services, dependent }, skipped: [] };
  }

  /** Throws the duplicate-ID problem TargetIds found, if any. */
  private unique(problem: string | undefined, path: JsonPath): void {
    if (problem !== undefined) throw invalidTarget(this.label, path, problem);
  }

  private keyId(key: string, path: JsonPath, what: 'app' | 'service'): number {
    if (/^[0-9]+$/.test(key)) return Number(key);
    const field = what === 'app' ? 'appId' : 'serviceId';
    throw invalidTarget(
      this.label,
      path,
      `${what} key '${key}' is not a numeric ID and the ${what} has no ${field}`,
    );
  }

  private reference(image: string, path: JsonPath): string {
    try {
      return normalizeReference(image);
    } catch (error) {
      if (isKeeperError(error, 'INVALID_REFERENCE'))
        throw invalidTarget(this.label, path, error.message, error);
      throw error;
    }
  }

  private check<T extends z.ZodType>(schema: T, value: unknown, path: JsonPath): z.output<T> {
    const result = schema.safeParse(value, { reportInput: true });
    if (!result.success) throw targetSchemaError(this.label, path, result.error);
    return result.data;
  }
}
