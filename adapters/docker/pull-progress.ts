import type { PullProgress } from '../../core/ports/engine.js';

/** One line of dockerd's pull stream (the subset we read). */
export interface PullEvent {
  readonly status?: string;
  readonly id?: string;
  readonly progressDetail?: { readonly current?: number; readonly total?: number };
  readonly error?: string;
  readonly errorDetail?: { readonly message?: string; readonly code?: number };
}

interface LayerState {
  done: boolean;
  bytesDone: number;
  bytesTotal: number;
}

/** Statuses that name a layer (the `id` is then a short layer digest, not the reference). */
const LAYER_STATUSES = new Set([
  'Pulling fs layer',
  'Waiting',
  'Downloading',
  'Verifying Checksum',
  'Download complete',
  'Extracting',
  'Pull complete',
  'Already exists',
]);

/**
 * Folds dockerd's per-layer events into one PullProgress. A layer counts as done on "Pull complete"
 * or "Already exists", so `layersTotal` is every layer of the image, including the ones it already had
 * (the fake engine counts only missing layers; only downloads carry bytes in both). Bytes come from
 * "Downloading" events (compressed sizes); a finished download counts in full even when dockerd sent
 * no byte count for it. "Extracting" bytes are not download progress and are ignored.
 */
export class PullProgressTracker {
  private readonly layers = new Map<string, LayerState>();

  constructor(private readonly ref: string) {}

  /** Applies one event; true when the aggregate changed. */
  apply(event: PullEvent): boolean {
    const { status, id } = event;
    if (status === undefined || id === undefined || !LAYER_STATUSES.has(status)) return false;
    const before = this.key();
    let layer = this.layers.get(id);
    if (!layer) {
      layer = { done: false, bytesDone: 0, bytesTotal: 0 };
      this.layers.set(id, layer);
    }
    switch (status) {
      case 'Downloading': {
        const { current, total } = event.progressDetail ?? {};
        if (typeof total === 'number' && total > 0) layer.bytesTotal = total;
        if (typeof current === 'number') layer.bytesDone = Math.min(current, layer.bytesTotal || current);
        break;
      }
      case 'Verifying Checksum':
      case 'Download complete':
      case 'Extracting':
        layer.bytesDone = layer.bytesTotal;
        break;
      case 'Pull complete':
        layer.bytesDone = layer.bytesTotal;
        layer.done = true;
        break;
      case 'Already exists':
        layer.done = true;
        break;
      default:
        break;
    }
    return this.key() !== before;
  }

  /** True when only byte counts moved since `previous` (layer counts unchanged): safe to throttle. */
  onlyBytesChanged(previous: PullProgress | undefined): boolean {
    const now = this.progress();
    return (
      previous !== undefined &&
      previous.layersDone === now.layersDone &&
      previous.layersTotal === now.layersTotal
    );
  }

  progress(): PullProgress {
    let layersDone = 0;
    let bytesDone = 0;
    let bytesTotal = 0;
    for (const layer of this.layers.values()) {
      if (layer.done) layersDone++;
      bytesDone += layer.bytesDone;
      bytesTotal += layer.bytesTotal;
    }
    return { ref: this.ref, layersDone, layersTotal: this.layers.size, bytesDone, bytesTotal };
  }

  private key(): string {
    const p = this.progress();
    return `${p.layersDone}/${p.layersTotal}/${p.bytesDone}/${p.bytesTotal}`;
  }
}
