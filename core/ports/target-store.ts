import type { Target } from '../model/target.js';

/**
 * The last target the device accepted. After a restart it is the only authority on what is needed:
 * an unknown target (null) means "remove nothing", never "everything is unneeded".
 */
export interface TargetStore {
  readTarget(): Promise<Target | null>;
  writeTarget(target: Target): Promise<void>;
}
