import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';

import { KeeperError } from '../../core/errors.js';
import type { FileSystem, WriteFileOptions } from '../../core/ports/file-system.js';

/**
 * The real file system over node:fs/promises. Every call maps to the syscall the port's durability
 * rules name, so what the fake file system models is what this one does.
 */
export class NodeFileSystem implements FileSystem {
  async readFile(path: string): Promise<Uint8Array | null> {
    try {
      const buffer = await readFile(path);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw error;
    }
  }

  async writeFile(path: string, data: Uint8Array, options: WriteFileOptions = {}): Promise<void> {
    try {
      const handle = await open(path, 'w', options.mode ?? 0o666);
      try {
        let written = 0;
        // write() may be partial; loop until the whole buffer is in the page cache.
        while (written < data.byteLength) {
          const { bytesWritten } = await handle.write(data, written, data.byteLength - written, written);
          written += bytesWritten;
        }
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw mapDiskFull(error, path);
    }
  }

  async fsync(path: string): Promise<void> {
    // Linux flushes the inode whichever descriptor asks, so a fresh descriptor is enough.
    try {
      const handle = await open(path, constants.O_RDONLY);
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw mapDiskFull(error, path);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await rename(from, to);
  }

  async fsyncDir(dir: string): Promise<void> {
    // Windows cannot open a directory for fsync; its renames are as durable as they get.
    if (process.platform === 'win32') return;
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } catch (error) {
      throw mapDiskFull(error, dir);
    } finally {
      await handle.close();
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      await unlink(path);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return [];
      throw error;
    }
  }

  async mkdirp(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function mapDiskFull(error: unknown, path: string): unknown {
  const code = errorCode(error);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new KeeperError('DISK_FULL', `no space left on device writing ${path}`, {
      cause: error,
      details: { path },
    });
  }
  return error;
}
