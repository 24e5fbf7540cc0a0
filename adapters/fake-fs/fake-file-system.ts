import { posix } from 'node:path';

import { KeeperError, assert } from '../../core/errors.js';
import type { FileSystem, WriteFileOptions } from '../../core/ports/file-system.js';

/**
 * An in-memory FileSystem with a crash model (ALICE/CrashMonkey style, see simulation-anchors §A6):
 *
 * - A file (inode) has durable bytes and, after an unsynced `writeFile`, volatile bytes. `fsync` makes
 *   them durable. Only the latest unsynced content exists: a second write before fsync replaces it.
 * - A directory has durable entries and a log of pending entry operations (create, rename, unlink)
 *   since its last `fsyncDir`. A rename is one operation (atomic within the directory); a rename across
 *   directories is one operation in each, each durable on its own.
 * - At a power cut, per dirty inode the volatile bytes are dropped, kept, or torn (a prefix of them
 *   followed by garbage bytes), and per directory a prefix of its pending operations survives (metadata
 *   reaches the journal in order). Inodes no durable name reaches are discarded.
 * - Directories themselves (`mkdirp`) are durable at once: the state directory is made at install time,
 *   and modelling it would only add states no protocol step can influence.
 *
 * Nothing here uses Math.random: every choice comes from a `PowerCutMode`.
 */
export class FakeFileSystem implements FileSystem {
  /** Called at the start of every FileSystem call; throw from it to cut power between two calls. */
  stepHook: StepHook | undefined;
  /** How many FileSystem calls have started (the step hook's `index` is this count before the call). */
  calls = 0;

  private readonly diskLimit: number | undefined;
  private readonly dirs = new Set<string>(['/']);
  private readonly dirEntries = new Map<string, DirState>();
  private readonly inodes = new Map<number, Inode>();
  private nextInode = 1;

  constructor(options: FakeFileSystemOptions = {}) {
    this.stepHook = options.stepHook;
    this.diskLimit = options.diskLimit;
  }

  /** A file system whose whole state is the snapshot, all of it durable. */
  static fromSnapshot(snapshot: FakeFsSnapshot, options: FakeFileSystemOptions = {}): FakeFileSystem {
    const fs = new FakeFileSystem(options);
    fs.load(snapshot);
    return fs;
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    const p = this.step('readFile', path);
    if (this.dirs.has(p)) throw fsError('EISDIR', 'read', p);
    const inode = this.lookup(p);
    return inode === undefined ? null : inode.current.slice();
  }

  async writeFile(path: string, data: Uint8Array, options: WriteFileOptions = {}): Promise<void> {
    const p = this.step('writeFile', path);
    const dir = this.parentOf(p, 'open');
    if (this.dirs.has(p)) throw fsError('EISDIR', 'open', p);
    let inode = this.lookup(p);
    if (inode === undefined) {
      inode = this.newInode(options.mode ?? 0o666);
      this.applyDirOp(dir, `create ${posix.basename(p)}`, [[posix.basename(p), inode.id]]);
    }
    // Like open(O_TRUNC) + write: the truncate happens even when the write then fails.
    inode.current = new Uint8Array(0);
    inode.dirty = true;
    if (this.diskLimit !== undefined && this.usage() + data.byteLength > this.diskLimit) {
      throw new KeeperError('DISK_FULL', `no space left on device writing ${p}`, {
        details: { path: p, diskLimit: this.diskLimit },
      });
    }
    inode.current = data.slice();
  }

  async fsync(path: string): Promise<void> {
    const p = this.step('fsync', path);
    const inode = this.lookup(p);
    if (inode === undefined) throw fsError('ENOENT', 'open', p);
    inode.durable = inode.current;
    inode.dirty = false;
  }

  async rename(from: string, to: string): Promise<void> {
    const f = this.step('rename', from, to);
    const t = normalise(to);
    const inode = this.lookup(f);
    const fromDir = this.parentOf(f, 'rename');
    const toDir = this.parentOf(t, 'rename');
    if (inode === undefined) throw fsError('ENOENT', 'rename', f);
    if (this.dirs.has(t)) throw fsError('EISDIR', 'rename', t);
    if (f === t) return;
    const description = `rename ${posix.basename(f)} -> ${posix.basename(t)}`;
    if (fromDir === toDir) {
      this.applyDirOp(fromDir, description, [
        [posix.basename(t), inode.id],
        [posix.basename(f), null],
      ]);
    } else {
      this.applyDirOp(toDir, description, [[posix.basename(t), inode.id]]);
      this.applyDirOp(fromDir, description, [[posix.basename(f), null]]);
    }
  }

  async fsyncDir(dir: string): Promise<void> {
    const d = this.step('fsyncDir', dir);
    if (!this.dirs.has(d)) throw fsError('ENOENT', 'open', d);
    const state = this.dirState(d);
    state.durable = new Map(state.current);
    state.pending = [];
  }

  async unlink(path: string): Promise<void> {
    const p = this.step('unlink', path);
    if (this.dirs.has(p)) throw fsError('EISDIR', 'unlink', p);
    if (this.lookup(p) === undefined) return;
    this.applyDirOp(posix.dirname(p), `unlink ${posix.basename(p)}`, [[posix.basename(p), null]]);
  }

  async list(dir: string): Promise<string[]> {
    const d = this.step('list', dir);
    if (!this.dirs.has(d)) return [];
    const names = [...(this.dirEntries.get(d)?.current.keys() ?? [])];
    for (const sub of this.dirs) {
      if (sub !== '/' && posix.dirname(sub) === d) names.push(posix.basename(sub));
    }
    return names.sort();
  }

  async mkdirp(dir: string): Promise<void> {
    const d = this.step('mkdirp', dir);
    for (let at = d; !this.dirs.has(at); at = posix.dirname(at)) {
      if (this.lookup(at) !== undefined) throw fsError('EEXIST', 'mkdir', at);
      this.dirs.add(at);
    }
  }

  /** The permission bits of the file at `path` as it stands now, or null when it does not exist. */
  modeOf(path: string): number | null {
    return this.lookup(normalise(path))?.mode ?? null;
  }

  /** The durable state if power were cut now with this choice; the file system itself is unchanged. */
  crashState(mode: PowerCutMode): FakeFsSnapshot {
    const choice = toChoice(mode);
    return this.materialise(
      (w) => choice.write(w),
      (d) => choice.dirOpsKept(d),
    );
  }

  /**
   * Cuts power: the chosen durable state becomes the whole state (volatile state is gone), and the file
   * system keeps working from there, like a device that rebooted. Returns that state.
   */
  powerCut(mode: PowerCutMode): FakeFsSnapshot {
    const snapshot = this.crashState(mode);
    this.load(snapshot);
    return snapshot;
  }

  /**
   * Every distinct durable state a power cut now could leave: each dirty inode a durable name could
   * reach is dropped, kept, emptied, torn to half, or kept with garbage appended; each directory keeps
   * each prefix of its pending operations. Fails (assertion) when there would be more than `maxStates`
   * combinations, so a test never silently explores less than it claims.
   */
  crashStates(options: { readonly maxStates?: number } = {}): FakeFsSnapshot[] {
    const maxStates = options.maxStates ?? 10_000;
    const writes = this.pendingWrites();
    const dirs = this.pendingDirOps();
    const axes: number[] = [
      ...writes.map((w) => enumeratedOutcomes(w).length),
      ...dirs.map((d) => d.ops.length + 1),
    ];
    const combinations = axes.reduce((a, b) => a * b, 1);
    assert(combinations <= maxStates, `crash states exceed the bound (${combinations} > ${maxStates})`, {
      combinations,
      maxStates,
    });
    const seen = new Map<string, FakeFsSnapshot>();
    const digits: number[] = axes.map(() => 0);
    for (let n = 0; n < combinations; n++) {
      let rest = n;
      for (let i = 0; i < axes.length; i++) {
        const base = axes[i] ?? 1;
        digits[i] = rest % base;
        rest = Math.floor(rest / base);
      }
      const writeChoice = new Map<number, FileOutcome>();
      writes.forEach((w, i) => {
        const outcome = enumeratedOutcomes(w)[digits[i] ?? 0];
        assert(outcome !== undefined, 'enumerated outcome exists');
        writeChoice.set(w.inode, outcome);
      });
      const dirChoice = new Map<string, number>();
      dirs.forEach((d, i) => dirChoice.set(d.dir, digits[writes.length + i] ?? 0));
      const snapshot = this.materialise(
        (w) => writeChoice.get(w.inode) ?? { kind: 'dropped' },
        (d) => dirChoice.get(d.dir) ?? 0,
      );
      const key = snapshotKey(snapshot);
      if (!seen.has(key)) seen.set(key, snapshot);
    }
    return [...seen.values()];
  }

  /** Unsynced file contents a durable name could reach after a cut (for choosers and diagnostics). */
  pendingWrites(): PendingWrite[] {
    const reachable = new Map<number, string[]>();
    for (const [dir, state] of this.dirEntries) {
      const add = (name: string, id: number | null): void => {
        if (id === null) return;
        const paths = reachable.get(id) ?? [];
        const path = posix.join(dir, name);
        if (!paths.includes(path)) paths.push(path);
        reachable.set(id, paths);
      };
      for (const [name, id] of state.durable) add(name, id);
      for (const op of state.pending) for (const [name, id] of op.changes) add(name, id);
    }
    const writes: PendingWrite[] = [];
    for (const [id, paths] of [...reachable].sort((a, b) => a[0] - b[0])) {
      const inode = this.inodes.get(id);
      if (inode === undefined || !inode.dirty) continue;
      writes.push({
        inode: id,
        paths: paths.sort(),
        durableSize: inode.durable.byteLength,
        volatileSize: inode.current.byteLength,
      });
    }
    return writes;
  }

  /** Directory operations not yet made durable by fsyncDir, oldest first. */
  pendingDirOps(): PendingDirOps[] {
    return [...this.dirEntries]
      .filter(([, state]) => state.pending.length > 0)
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([dir, state]) => ({ dir, ops: state.pending.map((op) => op.description) }));
  }

  private step(op: FsCallOp, path: string, to?: string): string {
    const index = this.calls++;
    this.stepHook?.(to === undefined ? { index, op, path } : { index, op, path, to });
    return normalise(path);
  }

  private materialise(
    writeOutcome: (w: PendingWrite) => FileOutcome,
    dirOpsKept: (d: PendingDirOps) => number,
  ): FakeFsSnapshot {
    const contents = new Map<number, Uint8Array>();
    for (const w of this.pendingWrites()) {
      const inode = this.inodes.get(w.inode);
      assert(inode !== undefined, 'pending write has an inode');
      contents.set(w.inode, applyOutcome(inode, writeOutcome(w)));
    }
    const files: FakeFileSnapshot[] = [];
    for (const d of this.pendingDirOps().concat(this.syncedDirs())) {
      const state = this.dirState(d.dir);
      const kept = Math.max(0, Math.min(d.ops.length, Math.floor(dirOpsKept(d))));
      const entries = new Map(state.durable);
      for (const op of state.pending.slice(0, kept)) {
        for (const [name, id] of op.changes) {
          if (id === null) entries.delete(name);
          else entries.set(name, id);
        }
      }
      for (const [name, id] of entries) {
        const inode = this.inodes.get(id);
        assert(inode !== undefined, 'directory entry has an inode', { name });
        files.push({
          path: posix.join(d.dir, name),
          data: (contents.get(id) ?? inode.durable).slice(),
          mode: inode.mode,
        });
      }
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { dirs: [...this.dirs].sort(), files };
  }

  private syncedDirs(): PendingDirOps[] {
    return [...this.dirEntries]
      .filter(([, state]) => state.pending.length === 0)
      .map(([dir]) => ({ dir, ops: [] }));
  }

  private load(snapshot: FakeFsSnapshot): void {
    this.dirs.clear();
    this.dirs.add('/');
    this.dirEntries.clear();
    this.inodes.clear();
    for (const dir of snapshot.dirs) {
      for (let at = normalise(dir); !this.dirs.has(at); at = posix.dirname(at)) this.dirs.add(at);
    }
    for (const file of snapshot.files) {
      const p = normalise(file.path);
      const dir = posix.dirname(p);
      for (let at = dir; !this.dirs.has(at); at = posix.dirname(at)) this.dirs.add(at);
      const inode = this.newInode(file.mode);
      inode.durable = file.data.slice();
      inode.current = inode.durable;
      inode.dirty = false;
      const state = this.dirState(dir);
      state.durable.set(posix.basename(p), inode.id);
      state.current.set(posix.basename(p), inode.id);
    }
  }

  private newInode(mode: number): Inode {
    const inode: Inode = {
      id: this.nextInode++,
      durable: new Uint8Array(0),
      current: new Uint8Array(0),
      dirty: false,
      mode,
    };
    this.inodes.set(inode.id, inode);
    return inode;
  }

  private lookup(path: string): Inode | undefined {
    const id = this.dirEntries.get(posix.dirname(path))?.current.get(posix.basename(path));
    return id === undefined ? undefined : this.inodes.get(id);
  }

  private parentOf(path: string, syscall: string): string {
    const dir = posix.dirname(path);
    if (!this.dirs.has(dir)) throw fsError('ENOENT', syscall, path);
    return dir;
  }

  private dirState(dir: string): DirState {
    let state = this.dirEntries.get(dir);
    if (state === undefined) {
      state = { durable: new Map(), current: new Map(), pending: [] };
      this.dirEntries.set(dir, state);
    }
    return state;
  }

  private applyDirOp(dir: string, description: string, changes: DirChange[]): void {
    const state = this.dirState(dir);
    for (const [name, id] of changes) {
      if (id === null) state.current.delete(name);
      else state.current.set(name, id);
    }
    state.pending.push({ description, changes });
  }

  /** Bytes held by the files visible now (like a real disk, an unlink frees space at once). */
  private usage(): number {
    const live = new Set<number>();
    for (const state of this.dirEntries.values()) for (const id of state.current.values()) live.add(id);
    let total = 0;
    for (const id of live) {
      const inode = this.inodes.get(id);
      if (inode !== undefined) total += Math.max(inode.durable.byteLength, inode.current.byteLength);
    }
    return total;
  }
}

export interface FakeFileSystemOptions {
  readonly stepHook?: StepHook;
  /** Total bytes the device holds; a write that would exceed it fails with DISK_FULL. */
  readonly diskLimit?: number;
}

export type FsCallOp =
  'readFile' | 'writeFile' | 'fsync' | 'rename' | 'fsyncDir' | 'unlink' | 'list' | 'mkdirp';

export interface FsCall {
  /** 0-based position of this call since the file system was made. */
  readonly index: number;
  readonly op: FsCallOp;
  readonly path: string;
  readonly to?: string;
}

export type StepHook = (call: FsCall) => void;

/** The durable state of the file system: what a rebooted device finds. */
export interface FakeFsSnapshot {
  readonly dirs: readonly string[];
  /** Sorted by path. */
  readonly files: readonly FakeFileSnapshot[];
}

export interface FakeFileSnapshot {
  readonly path: string;
  readonly data: Uint8Array;
  readonly mode: number;
}

/** What happens at a power cut to a file's unsynced content. */
export type FileOutcome =
  | { readonly kind: 'dropped' }
  | { readonly kind: 'kept' }
  /** The first `prefix` bytes of the unsynced content, then `garbage` deterministic junk bytes. */
  | { readonly kind: 'torn'; readonly prefix: number; readonly garbage: number };

export interface PendingWrite {
  readonly inode: number;
  /** Every name (durable or pending) that reaches this inode. */
  readonly paths: readonly string[];
  readonly durableSize: number;
  readonly volatileSize: number;
}

export interface PendingDirOps {
  readonly dir: string;
  /** Descriptions, oldest first, e.g. `rename a.tmp-1 -> a`. */
  readonly ops: readonly string[];
}

/** Decides the fate of each unsynced item at a power cut. */
export interface CrashChoice {
  write(pending: PendingWrite): FileOutcome;
  /** How many of the directory's pending operations (a prefix, 0..ops.length) survive. */
  dirOpsKept(pending: PendingDirOps): number;
}

/**
 * `drop`: nothing unsynced survives (the classic assumption). `keep`: everything reached the disk.
 * `{ seed }`: each item's fate is drawn from a deterministic generator seeded with `seed`.
 */
export type PowerCutMode = 'drop' | 'keep' | { readonly seed: number } | CrashChoice;

/** A CrashChoice drawing every fate from a deterministic generator (mulberry32), for simulator runs. */
export function seededCrashChoice(seed: number): CrashChoice {
  const next = mulberry32(seed);
  const below = (n: number): number => Math.floor(next() * n);
  return {
    write(pending) {
      switch (below(4)) {
        case 0:
          return { kind: 'dropped' };
        case 1:
          return { kind: 'kept' };
        case 2:
          return { kind: 'torn', prefix: below(pending.volatileSize + 1), garbage: 0 };
        default:
          return { kind: 'torn', prefix: below(pending.volatileSize + 1), garbage: 1 + below(64) };
      }
    },
    dirOpsKept: (pending) => below(pending.ops.length + 1),
  };
}

const DROP_ALL: CrashChoice = { write: () => ({ kind: 'dropped' }), dirOpsKept: () => 0 };
const KEEP_ALL: CrashChoice = { write: () => ({ kind: 'kept' }), dirOpsKept: (d) => d.ops.length };

function toChoice(mode: PowerCutMode): CrashChoice {
  if (mode === 'drop') return DROP_ALL;
  if (mode === 'keep') return KEEP_ALL;
  if ('seed' in mode) return seededCrashChoice(mode.seed);
  return mode;
}

/** The bounded set of fates the exhaustive enumeration tries for one unsynced content. */
function enumeratedOutcomes(w: PendingWrite): FileOutcome[] {
  return [
    { kind: 'dropped' },
    { kind: 'kept' },
    { kind: 'torn', prefix: 0, garbage: 0 },
    { kind: 'torn', prefix: Math.floor(w.volatileSize / 2), garbage: 0 },
    { kind: 'torn', prefix: w.volatileSize, garbage: 16 },
  ];
}

function applyOutcome(inode: Inode, outcome: FileOutcome): Uint8Array {
  switch (outcome.kind) {
    case 'dropped':
      return inode.durable;
    case 'kept':
      return inode.current;
    case 'torn': {
      const prefix = Math.max(0, Math.min(inode.current.byteLength, Math.floor(outcome.prefix)));
      const garbage = Math.max(0, Math.floor(outcome.garbage));
      const bytes = new Uint8Array(prefix + garbage);
      bytes.set(inode.current.subarray(0, prefix));
      const junk = mulberry32(inode.id * 7919 + prefix);
      for (let i = prefix; i < bytes.length; i++) bytes[i] = Math.floor(junk() * 256);
      return bytes;
    }
  }
}

function snapshotKey(snapshot: FakeFsSnapshot): string {
  return JSON.stringify([
    snapshot.dirs,
    snapshot.files.map((f) => [f.path, f.mode, Buffer.from(f.data).toString('base64')]),
  ]);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalise(path: string): string {
  return posix.resolve('/', path);
}

function fsError(code: string, syscall: string, path: string): Error {
  const error = new Error(`${code}: ${syscall} '${path}'`) as Error & {
    code: string;
    syscall: string;
    path: string;
  };
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}

interface Inode {
  readonly id: number;
  durable: Uint8Array;
  current: Uint8Array;
  dirty: boolean;
  readonly mode: number;
}

type DirChange = readonly [name: string, inode: number | null];

interface DirOp {
  readonly description: string;
  readonly changes: readonly DirChange[];
}

interface DirState {
  durable: Map<string, number>;
  current: Map<string, number>;
  pending: DirOp[];
}
