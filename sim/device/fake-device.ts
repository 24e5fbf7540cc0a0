import type { KeeperConfig } from '../../core/config.js';
import { ImageKeeper } from '../../core/keeper.js';
import type { TargetImage } from '../../core/model/target.js';
import type { Mutant } from '../../core/mutants.js';
import type { EventSink, KeeperEvent } from '../../core/ports/event-sink.js';
import { NO_EVENTS } from '../../core/ports/event-sink.js';
import { FakeEngine } from '../../adapters/fake-engine/fake-engine.js';
import { FakeRegistry } from '../../adapters/fake-engine/fake-registry.js';
import { MemoryImageDb } from '../../adapters/memory/memory-image-db.js';
import type { CompiledScenario } from '../scenario/compiled-scenario.js';
import { instrument, PowerController } from './power-controller.js';
import { VirtualClock } from './virtual-clock.js';

/**
 * A simulated device: fake registry, engine and DB holding the durable state, plus a power controller.
 * `boot()` builds a fresh core over that state, as a restart after a power cut does; everything the
 * previous core held in memory is gone.
 */
export class FakeDevice {
  readonly registry: FakeRegistry;
  readonly engine: FakeEngine;
  db: MemoryImageDb;
  readonly clock = new VirtualClock();
  readonly power = new PowerController();
  dependent: TargetImage[];
  keeper: ImageKeeper;
  boots = 0;
  private readonly config: Partial<KeeperConfig>;

  constructor(
    readonly scenario: CompiledScenario,
    options: { readonly mutant?: Mutant | undefined; readonly onEvent?: ((event: KeeperEvent) => void) | undefined } = {},
  ) {
    this.registry = new FakeRegistry(scenario.registry);
    const layers = scenario.initial.partialLayers;
    this.engine = new FakeEngine(
      this.registry,
      { images: scenario.initial.images, layers, containers: scenario.initial.containers, leakedBytes: 0 },
      {
        supportsDeltas: scenario.config.engineDeltas,
        ...(scenario.config.diskLimit !== undefined ? { diskLimit: scenario.config.diskLimit } : {}),
      },
    );
    const nextId = Math.max(1, ...scenario.initial.rows.map((r) => r.id + 1));
    this.db = new MemoryImageDb({ rows: scenario.initial.rows, nextId, target: scenario.initial.target });
    this.dependent = [...scenario.initial.dependent];
    this.config = {
      deltas: scenario.config.deltas,
      systemApps: scenario.config.systemApps,
      ...(options.mutant ? { mutant: options.mutant } : {}),
    };
    this.onEvent = options.onEvent;
    this.keeper = this.makeKeeper();
  }

  private readonly onEvent: ((event: KeeperEvent) => void) | undefined;

  /** A fresh core over the durable state: what the device runs after a (re)start. */
  boot(): ImageKeeper {
    this.boots++;
    this.engine.restart();
    this.keeper = this.makeKeeper();
    return this.keeper;
  }

  wipeDb(): void {
    this.db = new MemoryImageDb();
  }

  private makeKeeper(): ImageKeeper {
    const onEvent = this.onEvent;
    const events: EventSink = onEvent ? { emit: onEvent } : NO_EVENTS;
    return new ImageKeeper({
      db: instrument(this.db, 'db', this.power),
      targets: instrument(this.db, 'db', this.power),
      engine: instrument(this.engine, 'engine', this.power),
      containers: instrument(this.engine, 'containers', this.power),
      clock: this.clock,
      events,
      crashPoints: this.power,
      dependent: () => this.dependent,
      config: this.config,
    });
  }
}
