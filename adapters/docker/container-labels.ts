import type { ContainerService } from '../../core/model/container.js';
import type { TargetService } from '../../core/model/target.js';

/** The labels that mark a container as a service image-keeper switches (balena-supervisor style). */
export const LABEL_APP_ID = 'io.image-keeper.app-id';
export const LABEL_SERVICE_ID = 'io.image-keeper.service-id';
export const LABEL_SERVICE_NAME = 'io.image-keeper.service-name';
export const LABEL_COMMIT = 'io.image-keeper.commit';
export const LABEL_LOCKED = 'io.image-keeper.locked';

export function serviceLabels(service: TargetService): Record<string, string> {
  return {
    [LABEL_APP_ID]: String(service.appId),
    [LABEL_SERVICE_ID]: String(service.serviceId),
    [LABEL_SERVICE_NAME]: service.serviceName,
    [LABEL_COMMIT]: service.commit,
  };
}

/**
 * The service a container belongs to, or undefined for a foreign container. All four identity labels
 * must be present and well formed: a half-labelled container is someone else's, and image-keeper never
 * kills what it cannot attribute.
 */
export function serviceFromLabels(
  labels: Readonly<Record<string, string>> | undefined,
): ContainerService | undefined {
  if (!labels) return undefined;
  const appId = toId(labels[LABEL_APP_ID]);
  const serviceId = toId(labels[LABEL_SERVICE_ID]);
  const serviceName = labels[LABEL_SERVICE_NAME];
  const commit = labels[LABEL_COMMIT];
  if (appId === undefined || serviceId === undefined || !serviceName || !commit) return undefined;
  const locked = labels[LABEL_LOCKED];
  return {
    appId,
    serviceId,
    serviceName,
    commit,
    ...(locked === undefined ? {} : { locked: locked === 'true' || locked === '1' }),
  };
}

/** Docker container names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*: `ik_<serviceName>_<appId>_<short commit>`. */
export function containerName(service: TargetService): string {
  const clean = (text: string): string => text.replace(/[^a-zA-Z0-9_.-]/g, '-');
  return `ik_${clean(service.serviceName)}_${service.appId}_${clean(service.commit.slice(0, 7))}`;
}

function toId(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
