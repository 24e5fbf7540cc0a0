import type { Container } from '../model/container.js';
import type { EngineImage } from '../model/engine-image.js';
import { isDangling } from '../model/engine-image.js';
import type { ImageRow } from '../model/image-row.js';
import { rowKey } from '../model/image-row.js';
import type { DeltaSource, NeedReason, PlanStep } from '../model/plan-step.js';
import type { DependentState, Target, TargetImage, TargetService } from '../model/target.js';
import { EMPTY_TARGET } from '../model/target.js';
import type { Mutant } from '../mutants.js';
import { digestOf, repositoryOf, sameImage } from '../reference/image-reference.js';
import { DeviceView, newest } from './device-view.js';

export interface PlanInput {
  readonly rows: readonly ImageRow[];
  readonly images: readonly EngineImage[];
  readonly containers: readonly Container[];
  /** The persisted target; null when the device never accepted one (then nothing is removed). */
  readonly target: Target | null;
  /** An intermediate target (a purge, a restart through the API) moves containers but removes nothing. */
  readonly intermediate: boolean;
  /** What attached devices run now; their images are kept. */
  readonly dependent: DependentState;
  /** The device asks for deltas and the engine can apply them. */
  readonly deltas: boolean;
  readonly systemApps: readonly number[];
  /** A pull or delta is running elsewhere (an idle tick during apply): no idle cleanup then. */
  readonly fetchInFlight: boolean;
  /** Bytes of interrupted pulls the engine still holds; reclaimed by idle cleanup. */
  readonly partialBytes: number;
  readonly mutant?: Mutant | undefined;
}

export interface Plan {
  readonly steps: readonly PlanStep[];
  /** Every engine image ID something needs, with why. */
  readonly needs: ReadonlyMap<string, ReadonlySet<NeedReason>>;
  /** Rows kept this pass, with why. */
  readonly keptRows: ReadonlyMap<number, NeedReason>;
}

/**
 * The planner: a pure function of the device's state and its target. Rules, in the order they apply:
 *  1. A target image with an available row is satisfied; one present on the engine by digest gets a
 *     `save` (a row, no download); anything else gets a `fetch`, with the same app's same service's
 *     current image as delta source when deltas are on.
 *  2. An image is needed by a container (running or stopped), the target, a pending delta, or a
 *     dependent app. A row is kept when it stands for one of those; every other row is removed. With
 *     no known target, or an intermediate one, nothing is removed.
 *  3. delete-then-download stops the old container, lets its image go, then fetches; download-then-kill
 *     fetches every image of the app before any of its containers is switched.
 *  4. Idle cleanup (dangling images, leftover layers) only when nothing else is to be done and no pull
 *     is in flight.
 * Steps are ordered: saves, removals and kills that free disk for delete-then-download, fetches, the
 * other removals, then container switches.
 */
export function plan(input: PlanInput): Plan {
  const view = new DeviceView(input.rows, input.images, input.containers);
  const mutant = input.mutant;
  const target = input.target ?? (mutant === 'unknown-target-is-empty' ? EMPTY_TARGET : null);
  const needs = new Map<string, Set<NeedReason>>();
  const keptRows = new Map<number, NeedReason>();
  // Row keys of the target's services, computed once: every rule below asks for them.
  const keyOf = new Map<TargetImage, string>();
  if (target) for (const s of target.services) keyOf.set(s, rowKey(s));

  const saves: PlanStep[] = [];
  const removals: PlanStep[] = [];
  const freeingRemovals: PlanStep[] = [];
  const freeingKills: PlanStep[] = [];
  const fetches: PlanStep[] = [];
  const switches: PlanStep[] = [];

  // Containers pin their images by ID, running or stopped; a managed container also keeps its row.
  const containerRows = input.containers.map((container) => rowOfContainer(view, container));
  input.containers.forEach((container, i) => {
    if (mutant === 'ignore-stopped-containers' && !container.running) return;
    need(needs, container.imageId, 'container');
    const row = containerRows[i];
    if (row) keep(keptRows, row, 'container');
  });

  // Rule 1: satisfied, saved, or fetched.
  const satisfied = new Map<string, string>();
  const savedFor = new Set<string>();
  const toFetch: { image: TargetImage; strategy: TargetService['strategy']; pendingRowId?: number }[] = [];
  const seen = new Set<string>();
  const targetImages: { image: TargetImage; strategy: TargetService['strategy']; reason: NeedReason }[] = [];
  if (target) {
    for (const s of target.services) targetImages.push({ image: s, strategy: s.strategy, reason: 'target' });
    for (const d of target.dependent)
      targetImages.push({ image: d, strategy: 'download-then-kill', reason: 'dependent' });
  }
  for (const { image, strategy, reason } of targetImages) {
    const key = keyOf.get(image) ?? rowKey(image);
    if (seen.has(key)) continue;
    seen.add(key);
    const row = view.availableRowFor(image, key);
    if (row && row.dockerImageId !== null) {
      satisfied.set(key, row.dockerImageId);
      keep(keptRows, row, reason);
      need(needs, row.dockerImageId, reason);
      continue;
    }
    // A pending row (step 1 done), or a row whose image vanished, is reused: one row per key.
    const pending = view.pendingRowFor(image, key) ?? view.staleRowFor(image, key);
    if (pending) keep(keptRows, pending, reason);
    const present =
      view.engineImageFor(image.name, mutant === 'ignore-digest') ??
      (mutant === 'save-by-repository'
        ? view.images.find((i) => i.repoDigests.some((r) => repositoryOf(r) === repositoryOf(image.name)))
        : undefined);
    if (present) {
      need(needs, present.id, reason);
      savedFor.add(`${present.id}|${image.appId}/${image.serviceId}/${image.commit}`);
      saves.push({
        kind: 'save',
        image,
        dockerImageId: present.id,
        ...(pending ? { rowId: pending.id } : {}),
      });
    } else {
      toFetch.push({ image, strategy, ...(pending ? { pendingRowId: pending.id } : {}) });
    }
  }

  // Adoption: a managed container's image with no row (the DB was lost) gets one back, so the image is
  // managed again (reference counted, removable once the service moves on) and nothing is downloaded.
  input.containers.forEach((container, i) => {
    const service = container.service;
    const image = view.imagesById.get(container.imageId);
    if (!service || !image || containerRows[i]) return;
    const name = image.repoDigests[0] ?? image.repoTags[0];
    if (name === undefined) return;
    const adopted: TargetImage = {
      name,
      appId: service.appId,
      serviceId: service.serviceId,
      serviceName: service.serviceName,
      imageId: 0,
      releaseId: 0,
      commit: service.commit,
    };
    const covered = savedFor.has(`${image.id}|${service.appId}/${service.serviceId}/${service.commit}`);
    const adoptedKey = rowKey(adopted);
    if (covered || seen.has(adoptedKey)) return;
    seen.add(adoptedKey);
    saves.push({ kind: 'save', image: adopted, dockerImageId: image.id });
  });

  // Rule 3a: delete-then-download stops the old container first and fetches only once it is gone.
  const deferred = new Set<string>();
  if (target) {
    for (const service of target.services) {
      if (service.strategy !== 'delete-then-download' || satisfied.has(keyOf.get(service) ?? rowKey(service)))
        continue;
      const old = view.managedContainersOf(service.appId, service.serviceId);
      if (old.length === 0) continue;
      if (mutant !== 'fetch-before-delete') deferred.add(keyOf.get(service) ?? rowKey(service));
      if (view.lockedApps.has(service.appId)) continue;
      for (const container of old) {
        freeingKills.push({
          kind: 'kill',
          container,
          reason: 'delete-then-download: the old image goes before the new one comes',
        });
      }
    }
  }

  // Identity by digest: two target images with the same digest are fetched once; the other is saved
  // on the next pass, when the image is present.
  const fetching = new Set<string>();
  const droppedSources = new Set<string>();
  // An image a deferred delete-then-download service wants waits for it, also for the other services
  // wanting it: one fetch serves them all, after the old image has gone.
  const waiting = new Set<string>();
  if (deferred.size > 0)
    for (const f of toFetch)
      if (deferred.has(keyOf.get(f.image) ?? rowKey(f.image))) waiting.add(identityOf(f.image));
  for (const f of toFetch) {
    const identity = identityOf(f.image);
    if (waiting.has(identity)) continue;
    if (fetching.has(identity)) continue;
    fetching.add(identity);
    let deltaSource: DeltaSource | undefined;
    if (input.deltas && f.strategy !== 'delete-then-download') {
      deltaSource = deltaSourceFor(view, f.image, mutant);
      if (deltaSource && mutant === 'drop-delta-source') droppedSources.add(deltaSource.dockerImageId);
      if (deltaSource && mutant !== 'drop-delta-source') {
        need(needs, deltaSource.dockerImageId, 'delta-source');
        for (const row of view.rowsByDockerId.get(deltaSource.dockerImageId) ?? []) {
          if (row.appId === f.image.appId && row.serviceId === f.image.serviceId)
            keep(keptRows, row, 'delta-source');
        }
      }
    }
    fetches.push({
      kind: 'fetch',
      image: f.image,
      ...(deltaSource ? { deltaSource } : {}),
      ...(f.pendingRowId !== undefined ? { rowId: f.pendingRowId } : {}),
    });
  }

  // Rule 3b: switch an app's services only once all of its target images are ready.
  if (target) planSwitches(view, target, keyOf, satisfied, switches, mutant);

  // Rule 2: removals. An unknown target means "remove nothing", an intermediate one too.
  const removalsAllowed = target !== null && (!input.intermediate || mutant === 'remove-during-intermediate');
  if (removalsAllowed) {
    if (mutant !== 'ignore-dependent') {
      for (const dep of input.dependent) {
        const present = view.engineImageFor(dep.name);
        if (present) need(needs, present.id, 'dependent');
        for (const row of view.availableByApp.get(dep.appId) ?? []) {
          if (sameImage(row.name, dep.name)) keep(keptRows, row, 'dependent');
        }
      }
    }
    const replacedByDeleteThenDownload = new Set<string>();
    for (const s of target?.services ?? []) {
      if (s.strategy === 'delete-then-download' && !satisfied.has(keyOf.get(s) ?? rowKey(s)))
        replacedByDeleteThenDownload.add(`${s.appId}/${s.serviceId}`);
    }
    for (const row of input.rows) {
      if (keptRows.has(row.id) || input.systemApps.includes(row.appId)) continue;
      const step: PlanStep = { kind: 'remove', row, reason: removalReason(view, row) };
      const dropsSource = row.dockerImageId !== null && droppedSources.has(row.dockerImageId);
      if (replacedByDeleteThenDownload.has(`${row.appId}/${row.serviceId}`) || dropsSource)
        freeingRemovals.push(step);
      else removals.push(step);
    }
  }

  // delete-then-download frees disk before its fetch; every other removal waits until the fetches are
  // done: after them in the same pass, or, when a kill defers fetches to the next pass, until then. An
  // unneeded image may share layers (or, under another digest, its very ID) with an image still to come.
  const holdRemovals = freeingKills.length > 0 && mutant !== 'fetch-before-delete';
  const steps = saves;
  for (const part of [freeingRemovals, freeingKills, fetches, holdRemovals ? [] : removals, switches])
    for (const step of part) steps.push(step);

  // Rule 4: idle cleanup, only on a pass with nothing else to do.
  if (
    steps.length === 0 &&
    removalsAllowed &&
    (!input.fetchInFlight || mutant === 'idle-cleanup-during-pull')
  ) {
    const dangling = cleanupCandidates(view, mutant);
    if (dangling.length > 0 || input.partialBytes > 0) steps.push({ kind: 'cleanup', imageIds: dangling });
  }
  return { steps, needs, keptRows };
}

/**
 * Dangling engine images idle cleanup may remove: no tags, no digests (an image pulled by digest only
 * is NOT dangling), no row referencing the ID, no container using it.
 */
export function cleanupCandidates(view: DeviceView, mutant?: Mutant): string[] {
  const out: string[] = [];
  for (const image of view.images) {
    if (!isDangling(image) && !(mutant === 'digest-only-dangling' && image.repoTags.length === 0)) continue;
    if (view.rowsByDockerId.has(image.id) || view.containersByImage.has(image.id)) continue;
    out.push(image.id);
  }
  return out;
}

function need(needs: Map<string, Set<NeedReason>>, id: string, reason: NeedReason): void {
  const set = needs.get(id);
  if (set) set.add(reason);
  else needs.set(id, new Set([reason]));
}

/** The first reason a row is kept is the one reported. */
function keep(kept: Map<number, NeedReason>, row: ImageRow, reason: NeedReason): void {
  if (!kept.has(row.id)) kept.set(row.id, reason);
}

/** Identity by digest; a reference without one is identified by its name. */
function identityOf(image: TargetImage): string {
  return digestOf(image.name) ?? image.name;
}

function rowOfContainer(view: DeviceView, container: Container): ImageRow | undefined {
  const service = container.service;
  if (!service) return undefined;
  const candidates = (view.rowsByDockerId.get(container.imageId) ?? []).filter(
    (r) => r.appId === service.appId && r.serviceId === service.serviceId,
  );
  return newest(candidates.filter((r) => r.commit === service.commit)) ?? newest(candidates);
}

/** Only the same app's same service's current image: never another service's (balena #1729). */
function deltaSourceFor(
  view: DeviceView,
  image: TargetImage,
  mutant: Mutant | undefined,
): DeltaSource | undefined {
  const current = view
    .managedContainersOf(image.appId, image.serviceId)
    .filter((c) => view.imagesById.has(c.imageId));
  const running = current.find((c) => c.running) ?? current[0];
  if (running) {
    const row = newest(
      (view.rowsByDockerId.get(running.imageId) ?? []).filter((r) => r.appId === image.appId),
    );
    const engineImage = view.imagesById.get(running.imageId);
    const name = row?.name ?? engineImage?.repoDigests[0] ?? engineImage?.repoTags[0] ?? running.imageId;
    return { dockerImageId: running.imageId, name };
  }
  const sameService = newest(view.availableByService.get(`${image.appId}/${image.serviceId}`) ?? []);
  const source =
    sameService ??
    (mutant === 'delta-from-other-service'
      ? newest(view.availableByApp.get(image.appId) ?? [])
      : mutant === 'delta-from-other-app'
        ? newest(
            view.rows.filter(
              (r) => r.serviceName === image.serviceName && r.appId !== image.appId && view.isAvailable(r),
            ),
          )
        : undefined);
  return source?.dockerImageId ? { dockerImageId: source.dockerImageId, name: source.name } : undefined;
}

function planSwitches(
  view: DeviceView,
  target: Target,
  keyOf: ReadonlyMap<TargetImage, string>,
  satisfied: ReadonlyMap<string, string>,
  out: PlanStep[],
  mutant: Mutant | undefined,
): void {
  const servicesByApp = new Map<number, TargetService[]>();
  for (const s of target.services) {
    const list = servicesByApp.get(s.appId);
    if (list) list.push(s);
    else servicesByApp.set(s.appId, [s]);
  }
  for (const [appId, services] of servicesByApp) {
    const appReady = services.every((s) => satisfied.has(keyOf.get(s) ?? rowKey(s)));
    const locked = view.lockedApps.has(appId);
    for (const service of services) {
      const imageId = satisfied.get(keyOf.get(service) ?? rowKey(service));
      const ready = mutant === 'kill-before-ready' ? imageId !== undefined : appReady;
      if (!ready || imageId === undefined) continue;
      const current = view.managedContainersOf(appId, service.serviceId);
      if (current.length === 0) {
        out.push({ kind: 'start', service, dockerImageId: imageId });
        continue;
      }
      const stale = current.some((c) => c.imageId !== imageId || c.service?.commit !== service.commit);
      if (!stale || locked) continue;
      for (const container of current)
        out.push({ kind: 'kill', container, reason: 'switching to the target image' });
      out.push({ kind: 'start', service, dockerImageId: imageId });
    }
    if (locked) continue;
    const wanted = new Set(services.map((s) => s.serviceId));
    for (const container of view.containersByApp.get(appId) ?? []) {
      if (container.service && !wanted.has(container.service.serviceId)) {
        out.push({ kind: 'kill', container, reason: 'service dropped from the target' });
      }
    }
  }
  for (const [appId, containers] of view.containersByApp) {
    if (servicesByApp.has(appId) || view.lockedApps.has(appId)) continue;
    for (const container of containers)
      out.push({ kind: 'kill', container, reason: 'app dropped from the target' });
  }
}

function removalReason(view: DeviceView, row: ImageRow): string {
  if (row.dockerImageId === null) return 'pending row no longer in the target';
  if (!view.isAvailable(row)) return 'its image is gone from the engine';
  if (view.duplicated.has(row.id)) return 'duplicate row';
  return 'not needed by a container, the target, a delta or a dependent app';
}
