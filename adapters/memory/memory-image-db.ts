import { KeeperError } from '../../core/errors.js';
import { rowKey, type ImageRow, type NewImageRow } from '../../core/model/image-row.js';
import type { Target, TargetImage } from '../../core/model/target.js';
import type { ImageDb } from '../../core/ports/image-db.js';
import type { TargetStore } from '../../core/ports/target-store.js';

/** Everything the memory DB holds durably; a power cut in the simulator keeps exactly this. */
export interface MemoryDbState {
  readonly rows: readonly ImageRow[];
  /** The id the next insert gets: ids only grow, like SQLite AUTOINCREMENT. */
  readonly nextId: number;
  readonly target: Target | null;
}

export type MemoryDbOp = 'insertRow' | 'setDockerImageId' | 'deleteRow' | 'writeTarget';

/**
 * Called around each commit. Throwing a power cut at 'before' loses the commit; at 'after' the commit
 * is durable but the caller never hears so, the two outcomes the real DB allows.
 */
export type CommitHook = (op: MemoryDbOp, phase: 'before' | 'after') => void;

export const EMPTY_MEMORY_DB_STATE: MemoryDbState = { rows: [], nextId: 1, target: null };

/**
 * The ImageDb and TargetStore fake with the sql.js adapter's semantics (the shared contract suite holds
 * both to them): each call is one atomic commit, so the durable state is simply the current state.
 * Rows are copied on the way in and stored frozen, so what callers get can never change what is
 * stored (and listing, which the planner does on every pass, copies nothing but the array).
 */
export class MemoryImageDb implements ImageDb, TargetStore {
  private rows: ImageRow[];
  private nextId: number;
  private target: Target | null;
  private closed = false;
  private readonly commitHook: CommitHook | undefined;

  constructor(
    state: MemoryDbState = EMPTY_MEMORY_DB_STATE,
    options: { readonly commitHook?: CommitHook } = {},
  ) {
    const copy = {
      rows: state.rows.map((r) => Object.freeze({ ...r })),
      nextId: state.nextId,
      target: state.target,
    };
    this.rows = [...copy.rows].sort((a, b) => a.id - b.id);
    this.nextId = Math.max(copy.nextId, ...this.rows.map((r) => r.id + 1));
    this.target = copy.target === null ? null : copyTarget(copy.target);
    this.commitHook = options.commitHook;
  }

  /** A deep copy of the durable state: construct a new MemoryImageDb from it to "reboot". */
  durableState(): MemoryDbState {
    return { rows: this.rows.map((r) => ({ ...r })), nextId: this.nextId, target: this.target };
  }

  /** The live rows and target, uncopied: for checkers that must not slow the run. Do not mutate. */
  peek(): MemoryDbState {
    return { rows: this.rows, nextId: this.nextId, target: this.target };
  }

  async listRows(): Promise<ImageRow[]> {
    this.checkOpen();
    // Rows are frozen flat records, replaced (never mutated) on change.
    return this.rows.slice();
  }

  async insertRow(row: NewImageRow): Promise<ImageRow> {
    this.checkOpen();
    const existing = this.rows.find((r) => rowKey(r) === rowKey(row));
    if (existing !== undefined) {
      throw new KeeperError(
        'DB_ERROR',
        `insertRow: a row for ${rowKey(row)} already exists (id ${existing.id})`,
        {
          details: { rowId: existing.id },
        },
      );
    }
    const stored: ImageRow = Object.freeze({ ...pickRow(row), id: this.nextId });
    this.commit('insertRow', () => {
      this.rows.push(stored);
      this.nextId += 1;
    });
    return stored;
  }

  async setDockerImageId(rowId: number, dockerImageId: string): Promise<void> {
    this.checkOpen();
    const index = this.rows.findIndex((r) => r.id === rowId);
    const row = this.rows[index];
    if (row === undefined) {
      throw new KeeperError('DB_ERROR', `setDockerImageId: no image row ${rowId}`, { details: { rowId } });
    }
    this.commit('setDockerImageId', () => {
      this.rows[index] = Object.freeze({ ...row, dockerImageId });
    });
  }

  async deleteRow(rowId: number): Promise<void> {
    this.checkOpen();
    if (!this.rows.some((r) => r.id === rowId)) return;
    this.commit('deleteRow', () => {
      this.rows = this.rows.filter((r) => r.id !== rowId);
    });
  }

  async readTarget(): Promise<Target | null> {
    this.checkOpen();
    // The target is stored as a private frozen copy: sharing it is safe.
    return this.target;
  }

  async writeTarget(target: Target): Promise<void> {
    this.checkOpen();
    // Only the target's own fields, as the sql.js adapter's JSON keeps them: both return the same shape.
    const copy = copyTarget(target);
    this.commit('writeTarget', () => {
      this.target = copy;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private commit(op: MemoryDbOp, apply: () => void): void {
    this.commitHook?.(op, 'before');
    apply();
    this.commitHook?.(op, 'after');
  }

  private checkOpen(): void {
    if (this.closed) throw new KeeperError('DB_ERROR', 'the image DB is closed');
  }
}

function copyImage(i: TargetImage): TargetImage {
  return {
    name: i.name,
    appId: i.appId,
    serviceId: i.serviceId,
    serviceName: i.serviceName,
    imageId: i.imageId,
    releaseId: i.releaseId,
    commit: i.commit,
  };
}

/** A private, frozen copy of a target: read on every pass, never written. */
function copyTarget(target: Target): Target {
  return Object.freeze({
    services: Object.freeze(
      target.services.map((s) => Object.freeze({ ...copyImage(s), strategy: s.strategy })),
    ),
    dependent: Object.freeze(target.dependent.map((d) => Object.freeze(copyImage(d)))),
  });
}

/** Only the row's own fields, so extra properties a caller's object carries are never stored. */
function pickRow(row: NewImageRow): NewImageRow {
  return {
    name: row.name,
    appId: row.appId,
    serviceId: row.serviceId,
    serviceName: row.serviceName,
    imageId: row.imageId,
    releaseId: row.releaseId,
    commit: row.commit,
    dockerImageId: row.dockerImageId,
  };
}
