import { describe, expect, it } from 'vitest';

import { KeeperError, isKeeperError } from '../../core/errors.js';
import { FakeFileSystem, type FakeFsSnapshot, type FsCall } from './fake-file-system.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const files = (snapshot: FakeFsSnapshot): Record<string, string> =>
  Object.fromEntries(snapshot.files.map((f) => [f.path, new TextDecoder().decode(f.data)]));

async function withDir(): Promise<FakeFileSystem> {
  const fs = new FakeFileSystem();
  await fs.mkdirp('/d');
  return fs;
}

describe('FakeFileSystem', () => {
  it('reads back what it wrote, lists names and subdirectories, unlinks idempotently', async () => {
    const fs = await withDir();
    await fs.mkdirp('/d/sub/deeper');
    await fs.writeFile('/d/a', text('A'));
    expect(await fs.readFile('/d/a')).toEqual(text('A'));
    expect(await fs.readFile('/d/missing')).toBeNull();
    expect(await fs.list('/d')).toEqual(['a', 'sub']);
    expect(await fs.list('/nowhere')).toEqual([]);
    await fs.unlink('/d/a');
    await fs.unlink('/d/a');
    expect(await fs.list('/d')).toEqual(['sub']);
  });

  it('fails like the real one on a missing directory or file', async () => {
    const fs = new FakeFileSystem();
    await expect(fs.writeFile('/no/a', text('x'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.fsync('/a')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.rename('/a', '/b')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.fsyncDir('/no')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a write that was never fsynced is lost on a drop-all power cut; a synced one is not', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/a', text('old'));
    await fs.fsync('/d/a');
    await fs.fsyncDir('/d');
    await fs.writeFile('/d/a', text('new'));
    expect(files(fs.crashState('drop'))).toEqual({ '/d/a': 'old' });
    expect(files(fs.crashState('keep'))).toEqual({ '/d/a': 'new' });
  });

  it('a created name is lost until fsyncDir even when its data was fsynced', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/a', text('A'));
    await fs.fsync('/d/a');
    expect(files(fs.crashState('drop'))).toEqual({});
    await fs.fsyncDir('/d');
    expect(files(fs.crashState('drop'))).toEqual({ '/d/a': 'A' });
  });

  it('a rename is lost until fsyncDir, and then the old file is gone', async () => {
    const fs = await withDir();
    for (const [name, content] of [
      ['db', 'v1'],
      ['db.tmp', 'v2'],
    ] as const) {
      await fs.writeFile(`/d/${name}`, text(content));
      await fs.fsync(`/d/${name}`);
    }
    await fs.fsyncDir('/d');
    await fs.rename('/d/db.tmp', '/d/db');
    expect(await fs.readFile('/d/db')).toEqual(text('v2'));
    expect(files(fs.crashState('drop'))).toEqual({ '/d/db': 'v1', '/d/db.tmp': 'v2' });
    expect(files(fs.crashState('keep'))).toEqual({ '/d/db': 'v2' });
    await fs.fsyncDir('/d');
    expect(files(fs.crashState('drop'))).toEqual({ '/d/db': 'v2' });
  });

  it('renaming an unsynced file can leave the new name empty (the ALICE bug it exists to catch)', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/db.tmp', text('v2'));
    await fs.rename('/d/db.tmp', '/d/db');
    await fs.fsyncDir('/d');
    expect(fs.crashStates().map(files)).toContainEqual({ '/d/db': '' });
  });

  it('crashStates lists each distinct outcome of an unsynced create: absent, empty, kept, torn, garbage', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/a', text('hello'));
    const states = fs.crashStates().map(files);
    expect(states).toHaveLength(5);
    expect(states).toContainEqual({});
    expect(states).toContainEqual({ '/d/a': '' });
    expect(states).toContainEqual({ '/d/a': 'he' });
    expect(states).toContainEqual({ '/d/a': 'hello' });
    const garbage = fs.crashStates().find((s) => s.files[0]?.data.byteLength === 5 + 16);
    expect(garbage?.files[0]?.data.subarray(0, 5)).toEqual(text('hello'));
    // Deterministic: the same state enumerates the same way every time.
    expect(fs.crashStates()).toEqual(fs.crashStates());
  });

  it('keeps each prefix of a directory’s pending operations, in order', async () => {
    const fs = await withDir();
    for (const name of ['a', 'b']) {
      await fs.writeFile(`/d/${name}`, text(name));
      await fs.fsync(`/d/${name}`);
    }
    const states = fs.crashStates().map(files);
    expect(states).toEqual(expect.arrayContaining([{}, { '/d/a': 'a' }, { '/d/a': 'a', '/d/b': 'b' }]));
    expect(states).not.toContainEqual({ '/d/b': 'b' });
    expect(states).toHaveLength(3);
  });

  it('refuses to enumerate more states than its bound', async () => {
    const fs = await withDir();
    for (let n = 0; n < 8; n++) await fs.writeFile(`/d/f${n}`, text('x'));
    expect(() => fs.crashStates({ maxStates: 100 })).toThrow(/exceed the bound/);
  });

  it('powerCut makes the chosen state the whole state and keeps working', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/a', text('A'));
    await fs.fsync('/d/a');
    await fs.fsyncDir('/d');
    await fs.writeFile('/d/b', text('B'));
    fs.powerCut('drop');
    expect(await fs.list('/d')).toEqual(['a']);
    expect(fs.crashStates()).toHaveLength(1);
    await fs.writeFile('/d/c', text('C'));
    expect(await fs.list('/d')).toEqual(['a', 'c']);
  });

  it('a seeded power cut is reproducible', async () => {
    const outcomes = async (seed: number): Promise<Record<string, string>[]> => {
      const result = [];
      for (let run = 0; run < 20; run++) {
        const fs = await withDir();
        await fs.writeFile('/d/a', text('some data'));
        await fs.writeFile('/d/b', text('more data'));
        result.push(files(fs.powerCut({ seed: seed + run })));
      }
      return result;
    };
    expect(await outcomes(7)).toEqual(await outcomes(7));
    expect(new Set((await outcomes(7)).map((o) => JSON.stringify(o))).size).toBeGreaterThan(1);
  });

  it('fromSnapshot restores a durable state', async () => {
    const fs = await withDir();
    await fs.writeFile('/d/a', text('A'), { mode: 0o600 });
    await fs.fsync('/d/a');
    await fs.fsyncDir('/d');
    const copy = FakeFileSystem.fromSnapshot(fs.crashState('drop'));
    expect(await copy.readFile('/d/a')).toEqual(text('A'));
    expect(copy.modeOf('/d/a')).toBe(0o600);
    expect(copy.crashStates()).toHaveLength(1);
  });

  it('calls the step hook before every call, and a throw there stops the call', async () => {
    const seen: FsCall[] = [];
    const fs = new FakeFileSystem({
      stepHook: (call) => {
        seen.push(call);
        if (call.op === 'rename') throw new KeeperError('POWER_CUT', 'cut');
      },
    });
    await fs.mkdirp('/d');
    await fs.writeFile('/d/a', text('A'));
    await expect(fs.rename('/d/a', '/d/b')).rejects.toMatchObject({ code: 'POWER_CUT' });
    expect(await fs.list('/d')).toEqual(['a']);
    expect(seen.map((c) => `${c.index}:${c.op}`)).toEqual(['0:mkdirp', '1:writeFile', '2:rename', '3:list']);
    expect(seen[2]).toEqual({ index: 2, op: 'rename', path: '/d/a', to: '/d/b' });
  });

  it('fails a write past its disk limit with DISK_FULL naming the file', async () => {
    const fs = new FakeFileSystem({ diskLimit: 10 });
    await fs.mkdirp('/d');
    await fs.writeFile('/d/a', text('12345'));
    const error = await fs.writeFile('/d/b', text('123456')).catch((e: unknown) => e);
    expect(isKeeperError(error, 'DISK_FULL')).toBe(true);
    expect((error as Error).message).toContain('/d/b');
    await fs.unlink('/d/a');
    await fs.writeFile('/d/b', text('123456'));
  });
});
