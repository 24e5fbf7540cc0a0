import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import { isDangling } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import { rowKey } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import { digestOf } from '../../core/reference/image-reference.js';

/**
 * THE INVARIANTS, all in one place. Each is a named function over plain state, written independently
 * of the planner (an oracle that reuses the code under test proves nothing). They return a violation
 * message, or undefined when the invariant holds.
 */

export interface DeviceSnapshot {
  readonly rows: readonly ImageRow[];
  readonly images: readonly EngineImage[];
  readonly containers: readonly Container[];
  readonly target: Target | null;
  readonly dependent: readonly TargetImage[];
}

/** Does this engine image stand for that target reference? Identity by digest; tags only for tag refs. */
export function imageMatches(image: EngineImage, name: string): boolean {
  const digest = digestOf(name);
  if (digest !== undefined) return image.repoDigests.some((ref) => digestOf(ref) === digest);
  return image.repoTags.includes(name);
}

function targetImagesOf(target: Target | null): readonly TargetImage[] {
  return target ? [...target.services, ...target.dependent] : [];
}

/** Why an image is needed right now, by the definition in the brief; empty when nothing needs it. */
export function whyNeeded(state: DeviceSnapshot, image: EngineImage, deltaSourcesInFlight: ReadonlySet<string>): string[] {
  const why: string[] = [];
  const user = state.containers.find((c) => c.imageId === image.id);
  if (user) why.push(`container ${user.id} (${user.running ? 'running' : 'stopped'}) uses it`);
  const keys = new Set(state.rows.filter((r) => r.dockerImageId === image.id).map(rowKey));
  for (const t of targetImagesOf(state.target)) {
    if (imageMatches(image, t.name) || keys.has(rowKey(t))) {
      why.push(`the target needs it for ${t.appId}/${t.serviceName}@${t.commit}`);
      break;
    }
  }
  if (deltaSourcesInFlight.has(image.id)) why.push('an in-flight delta uses it as source');
  for (const d of state.dependent) {
    if (imageMatches(image, d.name)) {
      why.push(`dependent app ${d.appId} needs it`);
      break;
    }
  }
  return why;
}

/** S1: no engine image is deleted while a container uses it, the target needs it, an in-flight delta uses it as source, or a dependent app needs it. */
export function s1NoNeededImageDeleted(
  before: DeviceSnapshot,
  deleted: EngineImage,
  deltaSourcesInFlight: ReadonlySet<string>,
): string | undefined {
  const why = whyNeeded(before, deleted, deltaSourcesInFlight);
  return why.length > 0 ? `S1: deleted needed image ${deleted.id.slice(7, 19)}: ${why.join('; ')}` : undefined;
}

/** S2: an engine image is deleted only when no DB row with its ID remains but the one being removed (deleted right after). */
export function s2DeletedOnlyWhenUnreferenced(before: DeviceSnapshot, deleted: EngineImage): string | undefined {
  const referencing = before.rows.filter((r) => r.dockerImageId === deleted.id);
  return referencing.length > 1
    ? `S2: deleted image ${deleted.id.slice(7, 19)} while ${referencing.length} rows reference it (${referencing.map((r) => `${r.serviceName}@${r.commit}`).join(', ')})`
    : undefined;
}

/** S2 (after startup cleanup): every row with an image ID points to an image that exists. */
export function s2RowsPointToImages(state: DeviceSnapshot): string | undefined {
  const ids = new Set(state.images.map((i) => i.id));
  const bad = state.rows.filter((r) => r.dockerImageId !== null && !ids.has(r.dockerImageId));
  return bad.length > 0 ? `S2: after startup cleanup, rows point to missing images: ${bad.map((r) => r.name).join(', ')}` : undefined;
}

/** S3: no row is ever written with an image ID the engine does not have at that moment. */
export function s3RowIdExists(images: readonly EngineImage[], dockerImageId: string | null): string | undefined {
  if (dockerImageId === null) return undefined;
  return images.some((i) => i.id === dockerImageId)
    ? undefined
    : `S3: a row was written with image ID ${dockerImageId.slice(7, 19)}, which the engine does not have`;
}

/** K1: download-then-kill: no old container of an app is killed before every target image of that app is available. */
export function k1KillOnlyWhenReady(state: DeviceSnapshot, killed: Container): string | undefined {
  const service = killed.service;
  if (!service || !state.target) return undefined;
  const appServices = state.target.services.filter((s) => s.appId === service.appId);
  const mine = appServices.find((s) => s.serviceId === service.serviceId);
  if (!mine || mine.strategy === 'delete-then-download') return undefined;
  const ids = new Set(state.images.map((i) => i.id));
  const ready = new Set(state.rows.filter((r) => r.dockerImageId !== null && ids.has(r.dockerImageId)).map(rowKey));
  const missing = appServices.filter((s) => !ready.has(rowKey(s)));
  return missing.length > 0
    ? `K1: killed ${killed.id} of app ${service.appId} while ${missing.map((s) => s.serviceName).join(', ')} not yet downloaded`
    : undefined;
}

/**
 * L1: once faults stop, the device reaches: every target image present with exactly one row per
 * (image, app, service, release); no rows without images; no dangling images; no managed image that
 * nothing needs. `foreign` are images image-keeper never managed (an operator's, a supervisor's).
 */
export function l1Converged(state: DeviceSnapshot, foreign: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const ids = new Set(state.images.map((i) => i.id));
  const rowsByKey = new Map<string, ImageRow[]>();
  for (const r of state.rows) rowsByKey.set(rowKey(r), [...(rowsByKey.get(rowKey(r)) ?? []), r]);
  for (const t of targetImagesOf(state.target)) {
    const rows = rowsByKey.get(rowKey(t)) ?? [];
    if (rows.length !== 1) out.push(`L1: ${rows.length} rows for ${t.serviceName}@${t.commit} ${t.name}, expected exactly 1`);
    const row = rows[0];
    if (row && (row.dockerImageId === null || !ids.has(row.dockerImageId))) out.push(`L1: target image ${t.name} is not present`);
  }
  for (const r of state.rows) {
    if (r.dockerImageId === null || !ids.has(r.dockerImageId)) out.push(`L1: row ${r.id} ${r.name} has no image`);
  }
  for (const image of state.images) {
    if (isDangling(image) && !state.rows.some((r) => r.dockerImageId === image.id) && !state.containers.some((c) => c.imageId === image.id)) {
      out.push(`L1: dangling image ${image.id.slice(7, 19)} remains`);
    } else if (!foreign.has(image.id) && whyNeeded(state, image, new Set()).length === 0) {
      out.push(`L1: image ${image.id.slice(7, 19)} (${[...image.repoDigests, ...image.repoTags].join(', ')}) remains though nothing needs it`);
    }
  }
  return out;
}

/** B1: bytes downloaded are at most the bytes of layers missing at the start (of all images ever targeted). */
export function b1Bandwidth(bytesDownloaded: number, bytesMissingAtStart: number): string | undefined {
  return bytesDownloaded > bytesMissingAtStart
    ? `B1: downloaded ${bytesDownloaded} bytes, more than the ${bytesMissingAtStart} bytes of layers missing at the start`
    : undefined;
}

/** D1 (after convergence): disk holds only needed images, and nothing of interrupted pulls. */
export function d1DiskAfterConvergence(imageBytes: number, partialBytes: number, neededBytes: number): string | undefined {
  if (partialBytes > 0) return `D1: ${partialBytes} bytes of interrupted pulls remain after convergence`;
  return imageBytes > neededBytes ? `D1: disk holds ${imageBytes} bytes of images, only ${neededBytes} needed` : undefined;
}
