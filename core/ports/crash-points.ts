/**
 * Named places inside the protocol where the simulator may cut power. Production passes the no-op;
 * the core calls `reach` right after the effect the name describes, so a cut there leaves exactly
 * that effect durable.
 */
export const CRASH_POINTS = [
  'after-row-stored',
  'mid-pull',
  'after-image-complete',
  'after-id-written',
  'after-save',
  'between-untag-and-delete',
  'between-engine-delete-and-row-delete',
  'after-row-delete',
  'mid-delta',
  'after-kill',
  'after-start',
  'mid-startup-cleanup',
  'mid-idle-cleanup',
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface CrashPoints {
  reach(point: CrashPoint, detail: string): void;
}

export const NO_CRASH_POINTS: CrashPoints = { reach: () => undefined };
