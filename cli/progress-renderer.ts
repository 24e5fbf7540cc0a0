import type { PullProgress } from '../core/ports/engine.js';
import type { EventSink, KeeperEvent } from '../core/ports/event-sink.js';

/** What the CLI itself reports next to the core's events. */
export type CliNote =
  | { readonly type: 'device'; readonly db: string; readonly engine: string; readonly dbCreated: boolean }
  | { readonly type: 'db-recovered'; readonly reason: string; readonly movedTo: string }
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'done'; readonly passes: number; readonly stepsRun: number; readonly ms: number };

export type RenderedEvent = KeeperEvent | CliNote;

export interface ProgressRendererOptions {
  /** A terminal gets live bars; anything else gets one JSON object per line. */
  readonly tty: boolean;
  readonly write: (line: string) => void;
  readonly now?: () => number;
  /** Terminal width for bars (default 100). */
  readonly columns?: number;
}

/** Speed is measured over this window, so a stall shows as a falling speed within seconds. */
const SPEED_WINDOW_MS = 5_000;

interface Sample {
  readonly t: number;
  readonly bytes: number;
}

interface Bar {
  readonly ref: string;
  readonly started: number;
  progress: PullProgress;
  samples: Sample[];
}

/**
 * Renders what apply does. On a terminal: one live bar per image being pulled (bytes and layers,
 * speed, time left) kept at the bottom, with finished steps, retries and cleanups printed above it.
 * Otherwise: every event as one JSON object per line (progress lines carry speed and time left too),
 * so logs and supervisors can parse them; retries are events like any other, never hidden.
 */
export class ProgressRenderer implements EventSink {
  private readonly bars = new Map<string, Bar>();
  private liveLines = 0;
  private readonly now: () => number;
  private readonly columns: number;

  constructor(private readonly options: ProgressRendererOptions) {
    this.now = options.now ?? Date.now;
    this.columns = Math.max(60, options.columns ?? 100);
  }

  emit(event: RenderedEvent): void {
    const now = this.now();
    if (event.type === 'progress') this.track(event, now);
    if (!this.options.tty) {
      this.options.write(JSON.stringify(this.jsonOf(event, now)));
      return;
    }
    const lines = this.textOf(event, now);
    // Progress and step events move bars even when they print no line of their own.
    const barsMoved =
      (event.type === 'progress' || event.type === 'step') && (this.bars.size > 0 || this.liveLines > 0);
    if (lines.length > 0 || barsMoved) this.redraw(lines);
  }

  /** Settles the terminal: bars still live (a failed apply) are printed once more as plain lines. */
  finish(): void {
    if (!this.options.tty || this.bars.size === 0) return;
    const lines = [...this.bars.values()].map((bar) => `  ${this.barLine(bar)}`);
    this.bars.clear();
    this.redraw(lines);
  }

  // ---- JSON lines ----

  private jsonOf(event: RenderedEvent, now: number): Record<string, unknown> {
    const json: Record<string, unknown> = { ...event, time: new Date(now).toISOString() };
    if (event.type === 'progress') {
      const bar = this.bars.get(event.ref);
      const speed = bar ? speedOf(bar.samples) : undefined;
      json['bytesPerSecond'] = speed === undefined ? null : Math.round(speed);
      const eta = etaSeconds(event, speed);
      json['etaSeconds'] = eta === undefined ? null : Math.round(eta);
    }
    return json;
  }

  // ---- terminal ----

  private track(progress: PullProgress & { type: 'progress' }, now: number): void {
    const { type: _type, ...rest } = progress;
    const bar = this.bars.get(rest.ref) ?? { ref: rest.ref, started: now, progress: rest, samples: [] };
    // A retried pull starts over: old samples would make the speed negative.
    if (rest.bytesDone < bar.progress.bytesDone) bar.samples = [];
    bar.progress = rest;
    bar.samples.push({ t: now, bytes: rest.bytesDone });
    while (bar.samples.length > 2 && (bar.samples[1]?.t ?? now) <= now - SPEED_WINDOW_MS) bar.samples.shift();
    this.bars.set(rest.ref, bar);
  }

  private textOf(event: RenderedEvent, now: number): string[] {
    switch (event.type) {
      case 'device':
        return [`device: state DB ${event.db}${event.dbCreated ? ' (new)' : ''}, engine ${event.engine}`];
      case 'db-recovered':
        return [
          `state DB was corrupt (${event.reason}); moved to ${event.movedTo}; starting empty: images on the engine are adopted by digest`,
        ];
      case 'warning':
        return [`warning: ${event.message}`];
      case 'done':
        return [
          `done in ${formatDuration(event.ms / 1000)}: ${event.stepsRun} step(s) in ${event.passes} pass(es)`,
        ];
      case 'startup-cleanup': {
        if (event.repaired.length + event.deleted.length === 0) return [];
        const parts = [
          ...(event.repaired.length > 0 ? [`repaired ${event.repaired.join(', ')}`] : []),
          ...(event.deleted.length > 0 ? [`deleted rows ${event.deleted.join(', ')}`] : []),
        ];
        return [`startup cleanup: ${parts.join('; ')}`];
      }
      case 'pass':
        return [`pass ${event.pass}: ${event.steps.length} step(s)`];
      case 'step': {
        const ref = fetchRefOf(event.step);
        if (event.phase === 'start') {
          if (ref !== undefined && !this.bars.has(ref)) {
            this.bars.set(ref, { ref, started: now, progress: emptyProgress(ref), samples: [] });
          }
          return [];
        }
        const bar = ref === undefined ? undefined : this.bars.get(ref);
        if (ref !== undefined) this.bars.delete(ref);
        if (event.phase === 'failed') return [`✗ ${event.step}: ${event.error ?? 'failed'}`];
        if (!bar) return [`✓ ${event.step}`];
        const p = bar.progress;
        const secs = (now - bar.started) / 1000;
        const average = secs > 0 ? `, ${formatBytes(p.bytesDone / secs)}/s` : '';
        return [
          `✓ ${event.step} (${formatBytes(p.bytesDone)}, ${p.layersDone}/${p.layersTotal} layers in ${formatDuration(secs)}${average})`,
        ];
      }
      case 'progress':
        return [];
      case 'retry':
        return [
          `↻ retry ${event.what} in ${formatDuration(event.delayMs / 1000)} (attempt ${event.attempt}): ${event.error}`,
        ];
      case 'idle-cleanup':
        if (event.skipped !== undefined) return [`idle cleanup: skipped (${event.skipped})`];
        return event.removed.length > 0 ? [`idle cleanup: removed ${event.removed.join(', ')}`] : [];
      case 'converged':
        return [`converged after ${event.passes} pass(es)`];
    }
  }

  /** Rewrites the live block: moves up over the old bars, clears, prints new log lines, then the bars. */
  private redraw(logLines: readonly string[]): void {
    const bars = [...this.bars.values()].map((bar) => `  ${this.barLine(bar)}`);
    const lines = [...logLines, ...bars];
    // Every write ends a line, so clearing old bars needs a line to print; a bar never goes without one.
    if (lines.length === 0) return;
    const up = this.liveLines > 0 ? `\u001b[${this.liveLines}A\u001b[J` : '';
    lines.forEach((line, i) => this.options.write(i === 0 ? `${up}${line}` : line));
    this.liveLines = bars.length;
  }

  private barLine(bar: Bar): string {
    return formatBar(bar.progress, speedOf(bar.samples), this.columns);
  }
}

/** Width of the image column: fixed, so bars do not jump as the tail grows. */
const LABEL_WIDTH = 32;

/**
 * One bar: `app/main@8b68d7dccf65  [=====>    ]  52%  14.1 MiB/27.0 MiB  1/2 layers  5.2 MiB/s  ETA 3s`.
 * The fraction is the lower of bytes and layers: dockerd announces layers as it goes and extracts after
 * downloading, so either alone reaches 100% early. Full only when the step is done (the bar goes then).
 */
export function formatBar(p: PullProgress, speed: number | undefined, columns = 100): string {
  const fractions = [
    ...(p.bytesTotal > 0 ? [p.bytesDone / p.bytesTotal] : []),
    ...(p.layersTotal > 0 ? [p.layersDone / p.layersTotal] : []),
  ];
  const fraction = Math.min(0.99, ...fractions, fractions.length === 0 ? 0 : 1);
  const width = 20;
  const filled = Math.round(fraction * width);
  const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}]`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(3);
  const bytes = p.bytesTotal > 0 ? `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}` : '';
  const layers = p.layersTotal > 0 ? `${p.layersDone}/${p.layersTotal} layers` : 'starting';
  const rate = speed === undefined ? '' : `${formatBytes(speed)}/s`;
  const eta = etaSeconds(p, speed);
  const left = eta === undefined ? '' : `ETA ${formatDuration(eta)}`;
  const tail = [bar, percent, bytes, layers, rate, left].filter((s) => s !== '').join('  ');
  const labelWidth = Math.max(12, Math.min(LABEL_WIDTH, columns - tail.length - 4));
  return `${fit(shortRef(p.ref), labelWidth).padEnd(labelWidth)}  ${tail}`;
}

/** Bytes per second over the samples, or undefined before there is a measurable interval. */
export function speedOf(samples: readonly Sample[]): number | undefined {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.t - first.t < 200) return undefined;
  return Math.max(0, ((last.bytes - first.bytes) * 1000) / (last.t - first.t));
}

export function etaSeconds(
  p: Pick<PullProgress, 'bytesDone' | 'bytesTotal'>,
  speed: number | undefined,
): number | undefined {
  if (speed === undefined || speed <= 0 || p.bytesTotal <= 0) return undefined;
  return Math.max(0, (p.bytesTotal - p.bytesDone) / speed);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 1) return seconds <= 0 ? '0s' : `${Math.round(seconds * 1000)}ms`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * `reg.example:5000/app/main@sha256:<64 hex>` shown as `app/main@<12 hex>`: the registry is the same for
 * every image of a device and the digest prefix is enough to tell images apart.
 */
export function shortRef(ref: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  const withoutRegistry = /[.:]/.test(first) || first === 'localhost' ? ref.slice(slash + 1) : ref;
  return withoutRegistry.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@$1');
}

/** The reference a `fetch ...` step label names (see describeStep). */
function fetchRefOf(step: string): string | undefined {
  return /^fetch (\S+) for /.exec(step)?.[1];
}

function emptyProgress(ref: string): PullProgress {
  return { ref, layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 };
}

function fit(text: string, width: number): string {
  return text.length <= width ? text : `…${text.slice(text.length - width + 1)}`;
}
