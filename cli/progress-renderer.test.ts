import { describe, expect, it } from 'vitest';
import type { RenderedEvent } from './progress-renderer.js';
import {
  etaSeconds,
  formatBar,
  formatBytes,
  formatDuration,
  ProgressRenderer,
  shortRef,
  speedOf,
} from './progress-renderer.js';

const DIGEST = 'sha256:8b68d7dccf65e061e2729d424cf3eea9b80288908fb46d1093f40a471d07d6bb';
const REF = `127.0.0.1:5000/app/main@${DIGEST}`;
const MIB = 1024 * 1024;
const FETCH = `fetch ${REF} for 1/main@c1`;

function renderer(tty: boolean): { lines: string[]; at: (ms: number) => void; r: ProgressRenderer } {
  const lines: string[] = [];
  let now = 1_000_000;
  const r = new ProgressRenderer({ tty, write: (l) => lines.push(l), now: () => now, columns: 120 });
  return { lines, r, at: (ms) => (now = 1_000_000 + ms) };
}

const progress = (bytesDone: number, layersDone: number): RenderedEvent => ({
  type: 'progress',
  ref: REF,
  layersDone,
  layersTotal: 3,
  bytesDone,
  bytesTotal: 20 * MIB,
});

/** What a terminal shows after these writes: cursor-up-and-clear sequences applied. */
function screen(lines: readonly string[]): string[] {
  const shown: string[] = [];
  for (const line of lines) {
    let text = line;
    // eslint-disable-next-line no-control-regex -- matching the terminal's escape sequences is the point
    const up = /^\u001b\[(\d+)A\u001b\[J/.exec(text);
    if (up) {
      shown.splice(shown.length - Number(up[1]));
      text = text.slice(up[0].length);
    }
    shown.push(text);
  }
  return shown;
}

describe('JSON lines (not a terminal)', () => {
  it('writes every event as one JSON object with its time; progress carries speed and time left', () => {
    const { lines, r, at } = renderer(false);
    r.emit({ type: 'step', step: FETCH, phase: 'start' });
    at(0);
    r.emit(progress(0, 0));
    at(1000);
    r.emit(progress(4 * MIB, 1));
    at(2000);
    r.emit({
      type: 'retry',
      what: `pull ${REF}`,
      attempt: 1,
      delayMs: 50,
      error: 'received unexpected HTTP status: 500',
    });
    r.emit({ type: 'converged', passes: 2 });
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e['type'])).toEqual(['step', 'progress', 'progress', 'retry', 'converged']);
    expect(events[1]).toMatchObject({
      bytesPerSecond: null,
      etaSeconds: null,
      time: new Date(1_000_000).toISOString(),
    });
    expect(events[2]).toMatchObject({
      ref: REF,
      bytesDone: 4 * MIB,
      bytesTotal: 20 * MIB,
      layersDone: 1,
      layersTotal: 3,
      bytesPerSecond: 4 * MIB,
      etaSeconds: 4,
    });
    expect(events[3]).toMatchObject({ what: `pull ${REF}`, attempt: 1, delayMs: 50 });
    expect(lines.every((l) => !l.includes('\u001b'))).toBe(true);
  });
});

describe('a terminal', () => {
  it('keeps one live bar per image with bytes, layers, speed and time left, and prints finished steps above it', () => {
    const { lines, r, at } = renderer(true);
    r.emit({ type: 'pass', pass: 1, steps: [FETCH] });
    r.emit({ type: 'step', step: FETCH, phase: 'start' });
    r.emit(progress(0, 0));
    at(1000);
    r.emit(progress(5 * MIB, 1));
    const live = screen(lines);
    expect(live).toHaveLength(2);
    expect(live[0]).toBe('pass 1: 1 step(s)');
    expect(live[1]).toBe(
      '  app/main@8b68d7dccf65             [====>               ]  25%  5.0 MiB/20.0 MiB  1/3 layers  5.0 MiB/s  ETA 3s',
    );
    at(1500);
    r.emit({ type: 'retry', what: `pull ${REF}`, attempt: 1, delayMs: 50, error: 'boom' });
    expect(screen(lines).slice(-2)).toEqual([
      `↻ retry pull ${REF} in 50ms (attempt 1): boom`,
      expect.stringContaining('app/main@8b68d7dccf65'),
    ]);
    at(4000);
    r.emit({ ...progress(20 * MIB, 3) } as RenderedEvent);
    r.emit({ type: 'step', step: FETCH, phase: 'done' });
    r.emit({ type: 'converged', passes: 1 });
    const final = screen(lines);
    expect(final.slice(-2)).toEqual([
      `✓ ${FETCH} (20.0 MiB, 3/3 layers in 4s, 5.0 MiB/s)`,
      'converged after 1 pass(es)',
    ]);
    expect(final.join('\n')).not.toContain('[');
  });

  it('a bar never shows 100% before its step is done, and bytes unknown show as layers only', () => {
    expect(
      formatBar({ ref: REF, layersDone: 3, layersTotal: 3, bytesDone: 10, bytesTotal: 10 }, undefined),
    ).toContain(' 99%');
    expect(
      formatBar({ ref: REF, layersDone: 1, layersTotal: 3, bytesDone: 10, bytesTotal: 10 }, undefined),
    ).toContain(' 33%');
    const starting = formatBar(
      { ref: REF, layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 },
      undefined,
    );
    expect(starting).toMatch(/\[ {20}\] +0% {2}starting$/);
  });

  it('finish() prints bars of steps that never finished (a failed apply) as plain lines', () => {
    const { lines, r } = renderer(true);
    r.emit({ type: 'step', step: FETCH, phase: 'start' });
    r.emit(progress(MIB, 1));
    r.finish();
    const shown = screen(lines);
    expect(shown).toHaveLength(1);
    expect(shown[0]).toContain('1.0 MiB/20.0 MiB');
  });

  it('a failed fetch drops its bar and says why', () => {
    const { lines, r } = renderer(true);
    r.emit({ type: 'step', step: FETCH, phase: 'start' });
    r.emit(progress(MIB, 1));
    r.emit({ type: 'step', step: FETCH, phase: 'failed', error: 'no space left on device' });
    expect(screen(lines)).toEqual([`✗ ${FETCH}: no space left on device`]);
  });

  it('other steps print once, when done; empty cleanups print nothing', () => {
    const { lines, r } = renderer(true);
    r.emit({ type: 'startup-cleanup', repaired: [], deleted: [] });
    r.emit({ type: 'step', step: 'start 1/main@c1 on 0123456789ab', phase: 'start' });
    r.emit({ type: 'step', step: 'start 1/main@c1 on 0123456789ab', phase: 'done' });
    r.emit({ type: 'idle-cleanup', removed: [] });
    r.emit({ type: 'idle-cleanup', removed: [], skipped: 'a pull is in flight' });
    expect(lines).toEqual([
      '✓ start 1/main@c1 on 0123456789ab',
      'idle cleanup: skipped (a pull is in flight)',
    ]);
  });
});

describe('formatting', () => {
  it('bytes, durations and references', () => {
    expect([0, 999, 1536, 5 * MIB, 3 * 1024 * MIB].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '1.5 KiB',
      '5.0 MiB',
      '3.0 GiB',
    ]);
    expect([0, 0.25, 1.4, 59.6, 61, 3725].map(formatDuration)).toEqual([
      '0s',
      '250ms',
      '1s',
      '1m00s',
      '1m01s',
      '1h02m',
    ]);
    expect(shortRef(REF)).toBe('app/main@8b68d7dccf65');
    expect(shortRef('localhost/app/main:v1')).toBe('app/main:v1');
    expect(shortRef('library/busybox:latest')).toBe('library/busybox:latest');
  });

  it('speed over the sample window, and time left from it', () => {
    expect(speedOf([])).toBeUndefined();
    expect(
      speedOf([
        { t: 0, bytes: 0 },
        { t: 100, bytes: 100 },
      ]),
    ).toBeUndefined();
    expect(
      speedOf([
        { t: 0, bytes: 0 },
        { t: 2000, bytes: 4000 },
      ]),
    ).toBe(2000);
    expect(etaSeconds({ bytesDone: 1000, bytesTotal: 5000 }, 2000)).toBe(2);
    expect(etaSeconds({ bytesDone: 1000, bytesTotal: 5000 }, 0)).toBeUndefined();
    expect(etaSeconds({ bytesDone: 0, bytesTotal: 0 }, 10)).toBeUndefined();
  });
});
