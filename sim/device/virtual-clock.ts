import type { Clock } from '../../core/ports/clock.js';

/** Simulated time: sleeping advances the clock at once, so backoffs cost nothing and replay exactly. */
export class VirtualClock implements Clock {
  private time = 0;
  now(): number {
    return this.time;
  }
  async sleep(ms: number): Promise<void> {
    this.time += ms;
  }
}
