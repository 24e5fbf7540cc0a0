import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import { isDangling } from '../../core/model/engine-image.js';
import type { ImageRow } from '../../core/model/image-row.js';
import { rowKey } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import { digestOf, repositoryOf } from '../../core/reference/image-reference.js';

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
export function whyNeeded(
  state: DeviceSnapshot,
  image: EngineImage,
  deltaSourcesInFlight: ReadonlySet<string>,
): string[] {
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
  return why.length > 0
    ? `S1: deleted needed image ${deleted.id.slice(7, 19)}: ${why.join('; ')}`
    : undefined;
}

/** S2: an engine image is deleted only when no DB row with its ID remains but the one being removed (deleted right after). */
export function s2DeletedOnlyWhenUnreferenced(
  before: DeviceSnapshot,
  deleted: EngineImage,
): string | undefined {
  const referencing = before.rows.filter((r) => r.dockerImageId === deleted.id);
  return referencing.length > 1
    ? `S2: deleted image ${deleted.id.slice(7, 19)} while ${referencing.length} rows reference it (${referencing.map((r) => `${r.serviceName}@${r.commit}`).join(', ')})`
    : undefined;
}

/** S2 (after startup cleanup): every row with an image ID points to an image that exists. */
export function s2RowsPointToImages(state: DeviceSnapshot): string | undefined {
  const ids = new Set(state.images.map((i) => i.id));
  const bad = state.rows.filter((r) => r.dockerImageId !== null && !ids.has(r.dockerImageId));
  return bad.length > 0
    ? `S2: after startup cleanup, rows point to missing images: ${bad.map((r) => r.name).join(', ')}`
    : undefined;
}

/**
 * S3: no row is ever written with an image ID the engine does not have at that moment, nor with the ID
 * of an image that is not the one the row names (identity by digest: the image carries the row's
 * digest, or its tag, when the ID is written). Later, the engine may lose a reference behind our back;
 * the row then stays satisfied by its image ID, which still names the same content.
 */
export function s3RowIdExists(
  images: readonly EngineImage[],
  dockerImageId: string | null,
  name?: string,
): string | undefined {
  if (dockerImageId === null) return undefined;
  const image = images.find((i) => i.id === dockerImageId);
  if (!image)
    return `S3: a row was written with image ID ${dockerImageId.slice(7, 19)}, which the engine does not have`;
  if (name === undefined || imageMatches(image, name)) return undefined;
  return `S3: row ${name} was written with image ${dockerImageId.slice(7, 19)}, which does not carry that ${digestOf(name) ? 'digest' : 'tag'}`;
}

/** K1: download-then-kill: no old container of an app is killed before every target image of that app is available. */
export function k1KillOnlyWhenReady(state: DeviceSnapshot, killed: Container): string | undefined {
  const service = killed.service;
  if (!service || !state.target) return undefined;
  const appServices = state.target.services.filter((s) => s.appId === service.appId);
  const mine = appServices.find((s) => s.serviceId === service.serviceId);
  if (!mine || mine.strategy === 'delete-then-download') return undefined;
  const ids = new Set(state.images.map((i) => i.id));
  const ready = new Set(
    state.rows.filter((r) => r.dockerImageId !== null && ids.has(r.dockerImageId)).map(rowKey),
  );
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
    if (rows.length !== 1)
      out.push(`L1: ${rows.length} rows for ${t.serviceName}@${t.commit} ${t.name}, expected exactly 1`);
    const row = rows[0];
    if (row && (row.dockerImageId === null || !ids.has(row.dockerImageId)))
      out.push(`L1: target image ${t.name} is not present`);
  }
  for (const r of state.rows) {
    const image = r.dockerImageId === null ? undefined : state.images.find((i) => i.id === r.dockerImageId);
    if (!image) out.push(`L1: row ${r.id} ${r.name} has no image`);
  }
  for (const image of state.images) {
    if (
      isDangling(image) &&
      !state.rows.some((r) => r.dockerImageId === image.id) &&
      !state.containers.some((c) => c.imageId === image.id)
    ) {
      out.push(`L1: dangling image ${image.id.slice(7, 19)} remains`);
    } else if (!foreign.has(image.id) && whyNeeded(state, image, new Set()).length === 0) {
      out.push(
        `L1: image ${image.id.slice(7, 19)} (${[...image.repoDigests, ...image.repoTags].join(', ')}) remains though nothing needs it`,
      );
    }
  }
  return out;
}

/**
 * B1 (per apply): bytes downloaded are at most the bytes of the target's layers missing at the start,
 * cuts and retries included. delete-then-download frees the old image first, so the layers it shared
 * with the new one count as missing: that is the bandwidth such a device trades for disk.
 */
export function b1Bandwidth(bytesDownloaded: number, bytesMissingAtStart: number): string | undefined {
  return bytesDownloaded > bytesMissingAtStart
    ? `B1: downloaded ${bytesDownloaded} bytes, more than the ${bytesMissingAtStart} bytes of layers missing at the start`
    : undefined;
}

export function b1MissingBytes(
  targets: readonly Target[],
  registry: readonly {
    readonly digest: string;
    readonly layers: readonly { digest: string; size: number }[];
  }[],
  presentLayers: ReadonlySet<string>,
  state: DeviceSnapshot,
): number {
  const freed = new Set<string>();
  const free = (imageId: string | null): void => {
    for (const l of state.images.find((i) => i.id === imageId)?.layers ?? []) freed.add(l.digest);
  };
  for (const s of targets.flatMap((t) => t.services)) {
    if (s.strategy !== 'delete-then-download') continue;
    for (const c of state.containers)
      if (c.service?.appId === s.appId && c.service.serviceId === s.serviceId) free(c.imageId);
    for (const r of state.rows) if (r.appId === s.appId && r.serviceId === s.serviceId) free(r.dockerImageId);
  }
  const missing = new Map<string, number>();
  for (const t of targets.flatMap(targetImagesOf)) {
    for (const l of manifestFor(registry, t.name)?.layers ?? []) {
      if (!presentLayers.has(l.digest) || freed.has(l.digest)) missing.set(l.digest, l.size);
    }
  }
  return [...missing.values()].reduce((a, b) => a + b, 0);
}

/** Bytes of the target's layers that were on disk at the start of an apply and thrown away during it. */
export function b1RefetchBytes(
  target: Target,
  registry: readonly {
    readonly digest: string;
    readonly layers: readonly { digest: string; size: number }[];
  }[],
  presentAtStart: ReadonlySet<string>,
  discarded: ReadonlySet<string>,
): number {
  const again = new Map<string, number>();
  for (const t of targetImagesOf(target)) {
    for (const l of manifestFor(registry, t.name)?.layers ?? []) {
      if (presentAtStart.has(l.digest) && discarded.has(l.digest)) again.set(l.digest, l.size);
    }
  }
  return [...again.values()].reduce((a, b) => a + b, 0);
}

/** The registry manifest a reference resolves to: by digest, or by repository and tag. */
export function manifestFor<
  M extends { readonly digest: string; readonly repository?: string; readonly tags?: readonly string[] },
>(registry: readonly M[], name: string): M | undefined {
  const digest = digestOf(name);
  if (digest !== undefined) return registry.find((m) => m.digest === digest);
  const repository = repositoryOf(name);
  const tag = name.slice(name.lastIndexOf(':') + 1);
  return registry.find((m) => m.repository === repository && (m.tags ?? []).includes(tag));
}

/**
 * B1 (per layer): no layer that an image of the persisted target still needs is thrown away, so a layer
 * present, or completed before a cut, is never downloaded again. `discarded` are the layers a removal
 * or a prune just took off the disk, `removed` the images it deleted. delete-then-download is the one
 * trade: the old image of such a service goes first, with the layers it shares with the new one.
 */
export function b1NoNeededLayerDiscarded(
  before: DeviceSnapshot,
  discarded: ReadonlySet<string>,
  removed: readonly EngineImage[],
  registry: readonly {
    readonly digest: string;
    readonly repository?: string;
    readonly tags?: readonly string[];
    readonly layers: readonly { digest: string }[];
  }[],
): string | undefined {
  if (discarded.size === 0 || before.target === null) return undefined;
  const traded = new Set<string>();
  for (const s of before.target.services) {
    if (s.strategy !== 'delete-then-download') continue;
    const mine = (appId: number, serviceId: number): boolean =>
      appId === s.appId && serviceId === s.serviceId;
    for (const image of removed) {
      const old =
        before.rows.some((r) => r.dockerImageId === image.id && mine(r.appId, r.serviceId)) ||
        before.containers.some(
          (c) =>
            c.imageId === image.id && c.service !== undefined && mine(c.service.appId, c.service.serviceId),
        );
      if (old) for (const l of image.layers) traded.add(l.digest);
    }
  }
  for (const t of targetImagesOf(before.target)) {
    for (const l of manifestFor(registry, t.name)?.layers ?? []) {
      if (discarded.has(l.digest) && !traded.has(l.digest)) {
        return `B1: layer ${l.digest.slice(7, 19)} of ${t.serviceName}@${t.commit} (${t.name}) was thrown away though the target still needs it: it will be downloaded again`;
      }
    }
  }
  return undefined;
}

/** B1: an image whose digest is already on the engine is never downloaded again. */
export function b1NoSecondDownload(images: readonly EngineImage[], ref: string): string | undefined {
  return images.some((i) => imageMatches(i, ref))
    ? `B1: pulled ${ref} again although its digest is present`
    : undefined;
}

/**
 * D1 (per apply): peak disk is at most what was on disk before (the images needed before, and leftovers
 * cleanup has not reached yet) plus the layers of the images needed after (the new target, or the
 * persisted one a cut made the device finish first); in-flight partial layers are layers of those.
 */
export function d1PeakDiskOfApply(
  peakDisk: number,
  layersBefore: ReadonlyMap<string, number>,
  targets: readonly Target[],
  registry: readonly {
    readonly digest: string;
    readonly layers: readonly { digest: string; size: number }[];
  }[],
): string | undefined {
  const allowed = new Map(layersBefore);
  for (const t of targets.flatMap(targetImagesOf))
    for (const l of manifestFor(registry, t.name)?.layers ?? []) allowed.set(l.digest, l.size);
  const bound = [...allowed.values()].reduce((a, b) => a + b, 0);
  return peakDisk > bound
    ? `D1: peak disk ${peakDisk} bytes during the apply, more than the ${bound} bytes on disk before plus the layers of the target`
    : undefined;
}

/** D1 (after convergence): disk holds only needed images, and nothing of interrupted pulls. */
export function d1DiskAfterConvergence(
  imageBytes: number,
  partialBytes: number,
  neededBytes: number,
): string | undefined {
  if (partialBytes > 0) return `D1: ${partialBytes} bytes of interrupted pulls remain after convergence`;
  return imageBytes > neededBytes
    ? `D1: disk holds ${imageBytes} bytes of images, only ${neededBytes} needed`
    : undefined;
}

/** R1: after startup cleanup no row is left half-done: every pending row was repaired or deleted. */
export function r1NoPendingRowsAfterStartup(state: DeviceSnapshot): string | undefined {
  const pending = state.rows.filter((r) => r.dockerImageId === null);
  return pending.length > 0
    ? `R1: after startup cleanup, rows are still pending: ${pending.map((r) => r.name).join(', ')}`
    : undefined;
}

/** The pending row a pull of `ref` is for (step 1 stored it just before). */
function pendingRowOf(state: DeviceSnapshot, ref: string): ImageRow | undefined {
  let best: ImageRow | undefined;
  for (const r of state.rows)
    if (r.dockerImageId === null && r.name === ref && (!best || r.id > best.id)) best = r;
  return best;
}

/** S4: the delta source of a service is only that same app's same service's image (balena #1729). */
export function s4DeltaSourceOfSameService(
  state: DeviceSnapshot,
  ref: string,
  sourceId: string,
): string | undefined {
  // The service this delta is for: the pending row step 1 stored just before (else, when no row was
  // stored first, any target service that wants this reference).
  const pending = pendingRowOf(state, ref);
  const services = pending ? [pending] : targetImagesOf(state.target).filter((t) => t.name === ref);
  if (services.length === 0) return undefined;
  const own = services.some(
    (s) =>
      state.rows.some(
        (r) => r.appId === s.appId && r.serviceId === s.serviceId && r.dockerImageId === sourceId,
      ) ||
      state.containers.some(
        (c) => c.service?.appId === s.appId && c.service.serviceId === s.serviceId && c.imageId === sourceId,
      ),
  );
  const first = services[0];
  return own || !first
    ? undefined
    : `S4: delta for ${first.serviceName} of app ${first.appId} uses ${sourceId.slice(7, 19)}, which is not that service's image`;
}

/** S5: image-keeper deletes only images it manages (a row references them) or dangling ones: never an operator's. */
export function s5OnlyManagedDeleted(before: DeviceSnapshot, deleted: EngineImage): string | undefined {
  if (isDangling(deleted) || before.rows.some((r) => r.dockerImageId === deleted.id)) return undefined;
  return `S5: deleted image ${deleted.id.slice(7, 19)} (${[...deleted.repoTags, ...deleted.repoDigests].join(', ')}) that no row references and that is not dangling`;
}

/**
 * S6: a removal takes only the removed row's references: it never asks the engine to remove a
 * reference that is the name of another row. Returns the rows named `ref`; the monitor allows this
 * only for the row deleted next (the one being removed) and reports any other.
 */
export function s6RowsNamed(state: DeviceSnapshot, ref: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const row of state.rows) {
    if (row.name !== ref) continue;
    out.set(
      row.id,
      `S6: a removal untagged ${ref}, the name of row ${row.id} (${row.serviceName}@${row.commit}), which stays`,
    );
  }
  return out;
}

/** U1: with no known target (none ever persisted), nothing is removed and no container is killed. */
export function u1NothingRemovedWithoutTarget(state: DeviceSnapshot, action: string): string | undefined {
  return state.target === null ? `U1: ${action} while the target is unknown` : undefined;
}

/** DT1: delete-then-download never starts a pull while the service's old image is still on disk (balena #1233). */
export function dt1OldImageGoneBeforePull(state: DeviceSnapshot, ref: string): string | undefined {
  // The services this pull is for: the target's delete-then-download services that want this reference.
  const services = (state.target?.services ?? []).filter(
    (s) => s.strategy === 'delete-then-download' && s.name === ref,
  );
  const wanted = new Set(
    state.images
      .filter((i) => targetImagesOf(state.target).some((t) => imageMatches(i, t.name)))
      .map((i) => i.id),
  );
  for (const service of services) {
    const mine = (appId: number, serviceId: number): boolean =>
      appId === service.appId && serviceId === service.serviceId;
    if (state.containers.some((c) => c.service && mine(c.service.appId, c.service.serviceId))) {
      return `DT1: pulling ${ref} while the old container of ${service.serviceName} still exists`;
    }
    for (const old of state.rows) {
      if (!mine(old.appId, old.serviceId) || old.dockerImageId === null || old.name === ref) continue;
      const id = old.dockerImageId;
      if (wanted.has(id) || !state.images.some((i) => i.id === id)) continue;
      const sharedElsewhere =
        state.rows.some((r) => r.dockerImageId === id && !mine(r.appId, r.serviceId)) ||
        state.containers.some((c) => c.imageId === id);
      if (!sharedElsewhere)
        return `DT1: pulling ${ref} while ${service.serviceName}'s old image ${id.slice(7, 19)} is still on disk`;
    }
  }
  return undefined;
}

/** What a DB holds, for comparing states across a power cut. */
export interface DbContents {
  readonly rows: readonly ImageRow[];
  readonly target: Target | null;
}

/** P1: after a power cut inside persistence the DB opens to the state before or after the interrupted commit. */
export function p1DbOpensToBeforeOrAfter(
  before: DbContents,
  after: DbContents,
  reopened: DbContents,
): string | undefined {
  const key = (c: DbContents): string => JSON.stringify({ rows: c.rows, target: c.target });
  const got = key(reopened);
  if (got === key(before) || got === key(after)) return undefined;
  return `P1: after the cut the DB opened with ${reopened.rows.length} rows, neither the state before (${before.rows.length} rows) nor after (${after.rows.length} rows) the interrupted commit`;
}
