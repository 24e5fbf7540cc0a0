import type { KeeperConfig } from '../config.js';
import type { Clock } from '../ports/clock.js';
import type { ContainerControl } from '../ports/container-control.js';
import type { CrashPoints } from '../ports/crash-points.js';
import type { Engine } from '../ports/engine.js';
import type { EventSink } from '../ports/event-sink.js';
import type { ImageDb } from '../ports/image-db.js';
import type { TargetStore } from '../ports/target-store.js';

/** Everything the core reaches the world through, passed in (no module-level singletons). */
export interface KeeperContext {
  readonly db: ImageDb;
  readonly targets: TargetStore;
  readonly engine: Engine;
  readonly containers: ContainerControl;
  readonly clock: Clock;
  readonly events: EventSink;
  readonly crashPoints: CrashPoints;
  readonly config: KeeperConfig;
}
