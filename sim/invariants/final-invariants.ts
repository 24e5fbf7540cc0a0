import { isDangling } from '../../core/model/engine-image.js';
import type { FakeDevice } from '../device/fake-device.js';
import type { CompiledScenario } from '../scenario/compiled-scenario.js';
import type { DeviceSnapshot } from './invariants.js';
import { d1DiskAfterConvergence, l1Converged, manifestFor, whyNeeded } from './invariants.js';

/**
 * The end-of-run invariants (L1, D1) for a run that converged (B1 is checked per apply by the runner). Bounds are computed from the
 * scenario's own data: the layers present at the start and the layers of every image it targets.
 */
export function checkFinalInvariants(
  scenario: CompiledScenario,
  device: FakeDevice,
  state: DeviceSnapshot,
): string[] {
  const out: string[] = [];
  // With no known target there is nothing to converge to: the device must only have removed nothing (U1).
  if (state.target === null) return out;
  const initial = scenario.initial;
  // Foreign images: present at the start, not dangling, and neither referenced by a row nor used by a managed container.
  const foreign = new Set(
    initial.images
      .filter((i) => !isDangling(i))
      .filter((i) => !initial.rows.some((r) => r.dockerImageId === i.id))
      .filter((i) => !initial.containers.some((c) => c.service && c.imageId === i.id))
      .map((i) => i.id),
  );
  out.push(...l1Converged(state, foreign));

  const present = new Map<string, number>();
  for (const i of initial.images) for (const l of i.layers) present.set(l.digest, l.size);
  for (const l of initial.partialLayers) present.set(l.digest, l.size);
  const targeted = new Map<string, number>();
  const names = new Set<string>();
  for (const step of scenario.steps) {
    if (step.kind === 'apply')
      for (const t of [...step.target.services, ...step.target.dependent]) names.add(t.name);
  }
  if (initial.target)
    for (const t of [...initial.target.services, ...initial.target.dependent]) names.add(t.name);
  for (const name of names) {
    const manifest = manifestFor(scenario.registry, name);
    for (const l of manifest?.layers ?? []) targeted.set(l.digest, l.size);
  }
  const all = new Map([...present, ...targeted]);
  const bound = [...all.values()].reduce((a, b) => a + b, 0);
  if (device.engine.counters.peakDisk > bound) {
    out.push(
      `D1: peak disk ${device.engine.counters.peakDisk} bytes exceeds ${bound}, the bytes of every layer present at the start or targeted`,
    );
  }
  const neededLayers = new Map<string, number>();
  for (const image of state.images) {
    if (whyNeeded(state, image, new Set()).length > 0 || foreign.has(image.id))
      for (const l of image.layers) neededLayers.set(l.digest, l.size);
  }
  const needed = [...neededLayers.values()].reduce((a, b) => a + b, 0);
  const usage = device.engine.durableState();
  const imageLayers = new Map<string, number>();
  for (const image of usage.images) for (const l of image.layers) imageLayers.set(l.digest, l.size);
  const imageBytes = [...imageLayers.values()].reduce((a, b) => a + b, 0);
  const partial = device.engine.diskBytes() - imageBytes;
  const d1 = d1DiskAfterConvergence(imageBytes, partial, needed);
  if (d1) out.push(d1);
  return out;
}
