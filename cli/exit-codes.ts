/** Exit codes, documented in the README. */
export const EXIT = {
  OK: 0,
  /** A scenario expectation or an invariant failed, or the device did not converge. */
  FAILED: 1,
  /** Bad input: usage, a malformed scenario, target or DB file. */
  BAD_INPUT: 2,
  /** The engine, the registry or the disk failed (the state is kept; run again). */
  ENVIRONMENT: 3,
  /** Another image-keeper holds the DB lock. */
  LOCKED: 4,
} as const;
