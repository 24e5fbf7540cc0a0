/**
 * The file system, reached only through this port so the simulator can cut power between any two calls
 * and choose what survived. The durability rules are the strict POSIX ones (what ext4/XFS actually
 * promise), not what a lucky machine usually does:
 *
 * - `writeFile` data is volatile until `fsync(path)`.
 * - Creating, renaming or unlinking a name is volatile until `fsyncDir` of the directory holding it.
 * - `rename` replaces the destination atomically: after a crash the name holds the old or the new file.
 *
 * Paths are absolute or relative to the process; the port does no path arithmetic of its own.
 */
export interface FileSystem {
  /** The whole file, or null when it does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /**
   * Creates or truncates `path` and writes `data`. Not durable until `fsync(path)`; the name itself is
   * not durable until `fsyncDir` of its directory. `mode` applies only when the file is created.
   * Fails with KeeperError DISK_FULL when the device is full.
   */
  writeFile(path: string, data: Uint8Array, options?: WriteFileOptions): Promise<void>;
  /** Makes the data of `path` durable (not its name: see `fsyncDir`). */
  fsync(path: string): Promise<void>;
  /** Atomically replaces `to` with `from`; durable only after `fsyncDir` of both parents. */
  rename(from: string, to: string): Promise<void>;
  /** Makes the entries of `dir` (creates, renames, unlinks) durable. */
  fsyncDir(dir: string): Promise<void>;
  /** Removes `path`; a missing file is not an error (cleanup re-runs after a crash). */
  unlink(path: string): Promise<void>;
  /** The names (not paths) in `dir`, in no particular order; a missing directory lists as empty. */
  list(dir: string): Promise<string[]>;
  /** Creates `dir` and its missing parents; an existing directory is fine. */
  mkdirp(dir: string): Promise<void>;
}

export interface WriteFileOptions {
  /** Permission bits for a newly created file, e.g. 0o600 for the state DB. */
  readonly mode?: number;
}
