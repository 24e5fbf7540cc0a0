import type { Container } from '../../core/model/container.js';
import type { EngineImage } from '../../core/model/engine-image.js';
import type { NewImageRow } from '../../core/model/image-row.js';
import type { Target } from '../../core/model/target.js';
import type { FakeDevice } from '../device/fake-device.js';
import type { DbContents, DeviceSnapshot } from './invariants.js';
import {
  b1NoNeededLayerDiscarded,
  b1NoSecondDownload,
  dt1OldImageGoneBeforePull,
  k1KillOnlyWhenReady,
  s4DeltaSourceOfSameService,
  s5OnlyManagedDeleted,
  u1NothingRemovedWithoutTarget,
  s1NoNeededImageDeleted,
  s2DeletedOnlyWhenUnreferenced,
  s3RowIdExists,
  s6RowsNamed,
} from './invariants.js';

const DB_MUTATIONS = new Set(['db.insertRow', 'db.setDockerImageId', 'db.deleteRow', 'db.writeTarget']);

/**
 * Checks the safety invariants (S1-S6, K1, U1, DT1, B1's no second download and no needed layer thrown
 * away) around every port call of a fake device, from the
 * fakes' own state, not from what the core believes. Violations are collected, not thrown, so a run
 * reports all of them with the trace that led there.
 */
export class InvariantMonitor {
  readonly violations: string[] = [];
  checks = 0;
  private readonly deltaSources = new Set<string>();
  private before: { images: EngineImage[]; layers: string[]; snapshot: DeviceSnapshot } | undefined;
  /** The target of the apply in progress (an intermediate one included); null while the persisted one rules. */
  applying: Target | null = null;
  /** Intermediate targets remove nothing, so delete-then-download cannot free disk under them: DT1 is off. */
  applyingIntermediate = false;

  constructor(
    private readonly device: FakeDevice,
    private readonly onViolation?: (message: string) => void,
  ) {
    device.power.beforeCall = (label, args) => this.beforeCall(label, args);
    device.power.afterCall = (label, args, _result, ok) => this.afterCall(label, args, ok);
  }

  /** Rows whose name a removal untagged since the last row deletion (S6), with the message to report. */
  private readonly untagged = new Map<number, string>();

  /** Set when the target being applied is durably written (the runner clears it before each apply). */
  targetPersisted = false;

  /** Every layer a removal or prune took off the disk, since the runner last cleared it. */
  readonly discardedLayers = new Set<string>();

  /** A restart loses every in-flight delta. */
  onBoot(): void {
    this.deltaSources.clear();
    // A cut between an untag and its row's deletion leaves that row without its reference: the restart
    // removes the row again. What counts is the removal in flight, and power took it.
    this.untagged.clear();
    this.dbBeforeMutation = undefined;
    this.applying = null;
    this.applyingIntermediate = false;
  }

  /** The fakes' live state (uncopied: the checks only read it, before the call they guard mutates it). */
  snapshot(): DeviceSnapshot {
    const engine = this.device.engine.peek();
    const db = this.device.db.peek();
    return {
      rows: db.rows,
      images: engine.images,
      containers: engine.containers,
      target: db.target,
      dependent: this.device.dependent,
    };
  }

  private report(message: string | undefined): void {
    this.checks++;
    if (message === undefined) return;
    this.violations.push(message);
    this.onViolation?.(message);
  }

  /** The DB's contents before the mutation in flight (the "before" of P1). */
  dbBeforeMutation: DbContents | undefined;

  private beforeCall(label: string, args: readonly unknown[]): void {
    // Only a DB that can tear (sql.js over the crash-model file system) needs the "before" of P1.
    if (this.device.fs && DB_MUTATIONS.has(label))
      this.dbBeforeMutation = structuredClone(this.device.db.peek());
    switch (label) {
      case 'engine.pullDelta': {
        this.deltaSources.add(args[1] as string);
        const state = this.snapshot();
        this.report(b1NoSecondDownload(state.images, args[0] as string));
        this.report(
          s4DeltaSourceOfSameService(
            this.applying ? { ...state, target: this.applying } : state,
            args[0] as string,
            args[1] as string,
          ),
        );
        if (!this.applyingIntermediate) {
          this.report(
            dt1OldImageGoneBeforePull(
              this.applying ? { ...state, target: this.applying } : state,
              args[0] as string,
            ),
          );
        }
        return;
      }
      case 'engine.pull': {
        const state = this.snapshot();
        this.report(b1NoSecondDownload(state.images, args[0] as string));
        if (!this.applyingIntermediate) {
          this.report(
            dt1OldImageGoneBeforePull(
              this.applying ? { ...state, target: this.applying } : state,
              args[0] as string,
            ),
          );
        }
        return;
      }
      case 'engine.removeImage':
      case 'engine.removeReference':
      case 'engine.pruneUnusedLayers': {
        // Rows and containers do not change during an engine removal; images (their references, in
        // place) and layers do, so copy those: S1 and S5 judge a deletion by the image as it was.
        const live = this.snapshot();
        const images = live.images.map((i) => ({
          ...i,
          repoTags: [...i.repoTags],
          repoDigests: [...i.repoDigests],
        }));
        const snapshot = { ...live, images };
        this.before = { images, layers: [...this.device.engine.peekLayers().keys()], snapshot };
        this.report(u1NothingRemovedWithoutTarget(snapshot, `${label}(${String(args[0] ?? '')})`));
        return;
      }
      case 'db.setDockerImageId':
        this.report(
          s3RowIdExists(
            this.device.engine.peek().images,
            args[1] as string,
            this.device.db.peek().rows.find((r) => r.id === args[0])?.name,
          ),
        );
        return;
      case 'db.insertRow':
        this.report(
          s3RowIdExists(
            this.device.engine.peek().images,
            (args[0] as NewImageRow).dockerImageId,
            (args[0] as NewImageRow).name,
          ),
        );
        return;
      case 'containers.kill': {
        const state = this.snapshot();
        const active = this.applying ? { ...state, target: this.applying } : state;
        this.report(k1KillOnlyWhenReady(active, args[0] as Container));
        if (!this.applying)
          this.report(u1NothingRemovedWithoutTarget(state, `kill of ${(args[0] as Container).id}`));
        return;
      }
    }
  }

  private afterCall(label: string, args: readonly unknown[], ok: boolean): void {
    // A mutation cut short keeps its "before" for P1; one that completed is durable.
    if (DB_MUTATIONS.has(label) && ok) this.dbBeforeMutation = undefined;
    if (label === 'db.writeTarget' && ok && args[0] === this.applying) this.targetPersisted = true;
    if (label === 'db.deleteRow' && ok) {
      // The removal of one row ends with its deletion: only that row may have lost its reference.
      this.untagged.delete(args[0] as number);
      for (const message of this.untagged.values()) this.report(message);
      this.untagged.clear();
    }
    if (label === 'engine.removeReference' && ok) {
      for (const [rowId, message] of s6RowsNamed(this.snapshot(), args[0] as string)) {
        this.untagged.set(rowId, message);
      }
    }
    if (label === 'engine.pullDelta') this.deltaSources.delete(args[1] as string);
    if (
      (label === 'engine.removeImage' ||
        label === 'engine.removeReference' ||
        label === 'engine.pruneUnusedLayers') &&
      this.before
    ) {
      const now = new Set(this.device.engine.peek().images.map((i) => i.id));
      const removed: EngineImage[] = [];
      for (const image of this.before.images) {
        if (now.has(image.id)) continue;
        removed.push(image);
        this.report(s1NoNeededImageDeleted(this.before.snapshot, image, this.deltaSources));
        this.report(s2DeletedOnlyWhenUnreferenced(this.before.snapshot, image));
        this.report(s5OnlyManagedDeleted(this.before.snapshot, image));
      }
      const layers = this.device.engine.peekLayers();
      const discarded = new Set(this.before.layers.filter((digest) => !layers.has(digest)));
      for (const digest of discarded) this.discardedLayers.add(digest);
      this.report(
        b1NoNeededLayerDiscarded(this.before.snapshot, discarded, removed, this.device.scenario.registry),
      );
      this.before = undefined;
    }
  }
}
