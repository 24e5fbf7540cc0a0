import type { CrashPoint } from '../../core/ports/crash-points.js';

/** A power cut waiting at a named crash point. */
export interface ArmedCut {
  readonly at: CrashPoint;
  /** Text the point's detail must contain (an image reference, a container ID). */
  readonly match?: string | undefined;
  /** Cut on the n-th matching reach (1-based), counted from when the cut was armed. */
  readonly occurrence: number;
  /** After this cut, resume the interrupted target (default) or only run startup cleanup. */
  readonly resume?: boolean | undefined;
}

/**
 * Named cuts waiting for their point, shared by the simulator's power controller and the engine
 * tests' in-process power: a cut fires at the `occurrence`-th reach of its point whose detail
 * contains its `match`, and is then used up.
 */
export class ArmedCuts<C extends ArmedCut = ArmedCut> {
  private entries: { cut: C; seen: number }[] = [];

  arm(cut: C): void {
    this.entries.push({ cut, seen: 0 });
  }

  get size(): number {
    return this.entries.length;
  }

  /** Drops the cuts that have not fired and returns them. */
  clear(): C[] {
    const left = this.entries.map((entry) => entry.cut);
    this.entries = [];
    return left;
  }

  /** The cut that fires at this reach, if any (it is then used up). */
  fire(point: CrashPoint, detail: string): C | undefined {
    for (const entry of this.entries) {
      if (entry.cut.at !== point) continue;
      if (entry.cut.match !== undefined && !detail.includes(entry.cut.match)) continue;
      entry.seen++;
      if (entry.seen === entry.cut.occurrence) {
        this.entries = this.entries.filter((e) => e !== entry);
        return entry.cut;
      }
    }
    return undefined;
  }
}
