import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import type { NewImageRow } from '../../core/model/image-row.js';
import type { FakeDevice } from '../device/fake-device.js';
import type { DeviceSnapshot } from './invariants.js';
import { k1KillOnlyWhenReady, s1NoNeededImageDeleted, s2DeletedOnlyWhenUnreferenced, s3RowIdExists } from './invariants.js';

/**
 * Checks the safety invariants (S1, S2, S3, K1) around every port call of a fake device, from the
 * fakes' own state, not from what the core believes. Violations are collected, not thrown, so a run
 * reports all of them with the trace that led there.
 */
export class InvariantMonitor {
  readonly violations: string[] = [];
  checks = 0;
  private readonly deltaSources = new Set<string>();
  private before: { images: EngineImage[]; snapshot: DeviceSnapshot } | undefined;

  constructor(
    private readonly device: FakeDevice,
    private readonly onViolation?: (message: string) => void,
  ) {
    device.power.beforeCall = (label, args) => this.beforeCall(label, args);
    device.power.afterCall = (label, args) => this.afterCall(label, args);
  }

  /** A restart loses every in-flight delta. */
  onBoot(): void {
    this.deltaSources.clear();
  }

  /** The fakes' live state (uncopied: the checks only read it, before the call they guard mutates it). */
  snapshot(): DeviceSnapshot {
    const engine = this.device.engine.peek();
    const db = this.device.db.peek();
    return { rows: db.rows, images: engine.images, containers: engine.containers, target: db.target, dependent: this.device.dependent };
  }

  private report(message: string | undefined): void {
    this.checks++;
    if (message === undefined) return;
    this.violations.push(message);
    this.onViolation?.(message);
  }

  private beforeCall(label: string, args: readonly unknown[]): void {
    switch (label) {
      case 'engine.pullDelta':
        this.deltaSources.add(args[1] as string);
        return;
      case 'engine.removeImage':
      case 'engine.removeReference': {
        // Rows and containers do not change during an engine removal; images do, so copy only those refs.
        const snapshot = this.snapshot();
        this.before = { images: [...snapshot.images], snapshot };
        return;
      }
      case 'db.setDockerImageId':
        this.report(s3RowIdExists(this.device.engine.peek().images, args[1] as string));
        return;
      case 'db.insertRow':
        this.report(s3RowIdExists(this.device.engine.peek().images, (args[0] as NewImageRow).dockerImageId));
        return;
      case 'containers.kill':
        this.report(k1KillOnlyWhenReady(this.snapshot(), args[0] as Container));
        return;
    }
  }

  private afterCall(label: string, args: readonly unknown[]): void {
    if (label === 'engine.pullDelta') this.deltaSources.delete(args[1] as string);
    if ((label === 'engine.removeImage' || label === 'engine.removeReference') && this.before) {
      const now = new Set(this.device.engine.peek().images.map((i) => i.id));
      for (const image of this.before.images) {
        if (now.has(image.id)) continue;
        this.report(s1NoNeededImageDeleted(this.before.snapshot, image, this.deltaSources));
        this.report(s2DeletedOnlyWhenUnreferenced(this.before.snapshot, image));
      }
      this.before = undefined;
    }
  }
}
