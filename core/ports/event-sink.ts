import type { PullProgress } from './engine.js';

/** What the core reports while it works: the CLI renders these, the simulator records them. */
export type KeeperEvent =
  | {
      readonly type: 'startup-cleanup';
      readonly repaired: readonly string[];
      readonly deleted: readonly string[];
    }
  | { readonly type: 'pass'; readonly pass: number; readonly steps: readonly string[] }
  | {
      readonly type: 'step';
      readonly step: string;
      readonly phase: 'start' | 'done' | 'failed';
      readonly error?: string;
    }
  | ({ readonly type: 'progress' } & PullProgress)
  | {
      readonly type: 'retry';
      readonly what: string;
      readonly attempt: number;
      readonly delayMs: number;
      readonly error: string;
    }
  | { readonly type: 'idle-cleanup'; readonly removed: readonly string[]; readonly skipped?: string }
  | { readonly type: 'converged'; readonly passes: number };

export interface EventSink {
  emit(event: KeeperEvent): void;
}

export const NO_EVENTS: EventSink = { emit: () => undefined };
