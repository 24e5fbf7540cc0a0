import type { KeeperConfig } from '../../core/config.js';
import { ImageKeeper } from '../../core/keeper.js';
import type { ImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import type { Mutant } from '../../core/mutants.js';
import type { EventSink, KeeperEvent } from '../../core/ports/event-sink.js';
import { NO_EVENTS } from '../../core/ports/event-sink.js';
import type { ImageDb } from '../../core/ports/image-db.js';
import type { TargetStore } from '../../core/ports/target-store.js';
import { FakeEngine } from '../../adapters/fake-engine/fake-engine.js';
import { FakeRegistry } from '../../adapters/fake-engine/fake-registry.js';
import { FakeFileSystem } from '../../adapters/fake-fs/fake-file-system.js';
import { MemoryImageDb } from '../../adapters/memory/memory-image-db.js';
import { SqlJsStateDb } from '../../adapters/sqljs/sqljs-image-db.js';
import type { CompiledScenario } from '../scenario/compiled-scenario.js';
import { instrument, PowerController } from './power-controller.js';
import { VirtualClock } from './virtual-clock.js';

/**
 * Where the simulated device keeps its image table: the in-memory fake (every commit atomic), or the
 * real sql.js adapter over the crash-model file system, so power also goes out inside persistence.
 */
export type Persistence = 'memory' | 'sqljs';

/** The DB as the simulator sees it: the ports, plus a synchronous look for the invariant checks. */
export interface SimDb extends ImageDb, TargetStore {
  peek(): { readonly rows: readonly ImageRow[]; readonly target: Target | null };
}

const DB_PATH = '/data/image-keeper/images.sqlite';

/**
 * A simulated device: fake registry, engine and DB holding the durable state, plus a power controller.
 * `boot()` builds a fresh core over that state, as a restart after a power cut does; everything the
 * previous core held in memory is gone.
 */
export class FakeDevice {
  readonly registry: FakeRegistry;
  readonly engine: FakeEngine;
  db: SimDb;
  readonly clock = new VirtualClock();
  readonly power = new PowerController();
  dependent: TargetImage[];
  keeper: ImageKeeper;
  boots = 0;
  /** With sql.js: the crash-model file system under the DB. */
  readonly fs: FakeFileSystem | undefined;
  private readonly config: Partial<KeeperConfig>;
  private readonly onEvent: ((event: KeeperEvent) => void) | undefined;
  private cutsAtLastBoot = 0;

  private constructor(
    readonly scenario: CompiledScenario,
    options: {
      readonly mutant?: Mutant | undefined;
      readonly onEvent?: ((event: KeeperEvent) => void) | undefined;
    },
    db: SimDb,
    fs: FakeFileSystem | undefined,
  ) {
    this.registry = new FakeRegistry(scenario.registry);
    this.engine = new FakeEngine(
      this.registry,
      {
        images: scenario.initial.images,
        layers: scenario.initial.partialLayers,
        containers: scenario.initial.containers,
        leakedBytes: 0,
      },
      {
        supportsDeltas: scenario.config.engineDeltas,
        ...(scenario.config.diskLimit !== undefined ? { diskLimit: scenario.config.diskLimit } : {}),
      },
    );
    this.db = db;
    this.fs = fs;
    this.dependent = [...scenario.initial.dependent];
    this.config = {
      deltas: scenario.config.deltas,
      systemApps: scenario.config.systemApps,
      ...(options.mutant ? { mutant: options.mutant } : {}),
    };
    this.onEvent = options.onEvent;
    this.keeper = this.makeKeeper();
  }

  static async create(
    scenario: CompiledScenario,
    options: {
      readonly mutant?: Mutant | undefined;
      readonly onEvent?: ((event: KeeperEvent) => void) | undefined;
      readonly persistence?: Persistence;
    } = {},
  ): Promise<FakeDevice> {
    if ((options.persistence ?? 'memory') === 'memory') {
      const nextId = Math.max(1, ...scenario.initial.rows.map((r) => r.id + 1));
      const db = new MemoryImageDb({ rows: scenario.initial.rows, nextId, target: scenario.initial.target });
      return new FakeDevice(scenario, options, db, undefined);
    }
    const fs = new FakeFileSystem();
    const db = await SqlJsStateDb.open(fs, DB_PATH);
    // The initial rows keep their order; sql.js numbers them itself.
    for (const row of [...scenario.initial.rows].sort((a, b) => a.id - b.id)) {
      const { id: _id, ...rest } = row;
      await db.insertRow(rest);
    }
    if (scenario.initial.target) await db.writeTarget(scenario.initial.target);
    const device = new FakeDevice(scenario, options, db, fs);
    // From now on every file-system call is a step where power can go out.
    fs.stepHook = (call) => device.power.tick(`fs.${call.op}`);
    return device;
  }

  /**
   * A fresh core over the durable state: what the device runs after a (re)start. With sql.js, a power
   * cut since the last boot first decides what the file system kept (seeded, so a run replays), then the
   * DB is opened from it.
   */
  async boot(): Promise<ImageKeeper> {
    this.boots++;
    this.power.restore();
    this.engine.restart();
    if (this.fs && this.power.cuts > this.cutsAtLastBoot) {
      this.fs.stepHook = undefined;
      await this.releaseDb();
      this.fs.powerCut({ seed: this.power.calls });
      this.db = await SqlJsStateDb.open(this.fs, DB_PATH);
      const fs = this.fs;
      fs.stepHook = (call) => this.power.tick(`fs.${call.op}`);
    }
    this.cutsAtLastBoot = this.power.cuts;
    this.keeper = this.makeKeeper();
    return this.keeper;
  }

  /** The image table is lost (a data partition wiped, an OS update that forgot it). */
  async wipeDb(): Promise<void> {
    if (!this.fs) {
      this.db = new MemoryImageDb();
      return;
    }
    const fs = this.fs;
    fs.stepHook = undefined;
    await this.releaseDb();
    await fs.unlink(DB_PATH);
    await fs.fsyncDir(DB_PATH.slice(0, DB_PATH.lastIndexOf('/')));
    this.db = await SqlJsStateDb.open(fs, DB_PATH);
    fs.stepHook = (call) => this.power.tick(`fs.${call.op}`);
  }

  /** Frees what the run holds outside the JS heap (sql.js memory); the device is unusable afterwards. */
  async dispose(): Promise<void> {
    await this.releaseDb();
  }

  private async releaseDb(): Promise<void> {
    if (this.db instanceof SqlJsStateDb) await this.db.abandon();
  }

  /** Instrumented ports, made once per port object: the engine lives across boots, a memory DB too. */
  private readonly instrumented = new WeakMap<object, Map<string, object>>();

  private watched<T extends object>(port: T, name: string): T {
    let byName = this.instrumented.get(port);
    if (!byName) this.instrumented.set(port, (byName = new Map()));
    let wrapped = byName.get(name);
    if (!wrapped) byName.set(name, (wrapped = instrument(port, name, this.power)));
    return wrapped as T;
  }

  private makeKeeper(): ImageKeeper {
    const onEvent = this.onEvent;
    const events: EventSink = onEvent ? { emit: onEvent } : NO_EVENTS;
    return new ImageKeeper({
      db: this.watched(this.db, 'db'),
      targets: this.watched(this.db, 'db'),
      engine: this.watched(this.engine, 'engine'),
      containers: this.watched(this.engine, 'containers'),
      clock: this.clock,
      events,
      crashPoints: this.power,
      dependent: () => this.dependent,
      config: this.config,
    });
  }
}
