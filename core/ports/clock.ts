/** Time reaches the core only through this port, so the simulator runs on virtual time. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}
