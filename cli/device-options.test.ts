import { describe, expect, it } from 'vitest';
import { isKeeperError } from '../core/errors.js';
import { DEFAULT_DB_PATH, resolveDeviceSettings } from './device-options.js';

const SOCKET = 'unix:///run/private/engine.sock';

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isKeeperError(error, 'USAGE')) return error.message;
    throw error;
  }
  throw new Error('expected a USAGE error');
}

describe('resolveDeviceSettings', () => {
  it('the DB: --db, else IMAGE_KEEPER_DB, else the default; always absolute', () => {
    expect(resolveDeviceSettings({ engine: SOCKET }, {}).dbPath).toBe(DEFAULT_DB_PATH);
    expect(resolveDeviceSettings({ engine: SOCKET }, { IMAGE_KEEPER_DB: '/data/ik.sqlite' }).dbPath).toBe(
      '/data/ik.sqlite',
    );
    expect(
      resolveDeviceSettings({ engine: SOCKET, db: '/x/y.sqlite' }, { IMAGE_KEEPER_DB: '/data/ik.sqlite' })
        .dbPath,
    ).toBe('/x/y.sqlite');
    expect(resolveDeviceSettings({ engine: SOCKET, db: 'rel/y.sqlite' }, {}).dbPath).toBe(
      `${process.cwd()}/rel/y.sqlite`,
    );
  });

  it('the engine: --engine, else DOCKER_HOST, else a USAGE error; never a default socket', () => {
    expect(resolveDeviceSettings({ engine: SOCKET }, { DOCKER_HOST: 'unix:///other.sock' })).toMatchObject({
      engineUrl: SOCKET,
      engineFrom: '--engine',
    });
    expect(resolveDeviceSettings({}, { DOCKER_HOST: SOCKET })).toMatchObject({
      engineUrl: SOCKET,
      engineFrom: 'DOCKER_HOST',
    });
    expect(usage(() => resolveDeviceSettings({}, {}))).toMatch(
      /no engine named: pass --engine unix:\/\/\/path\/to\/docker.sock or set DOCKER_HOST/,
    );
    expect(usage(() => resolveDeviceSettings({}, { DOCKER_HOST: '  ' }))).toMatch(/no engine named/);
    expect(usage(() => resolveDeviceSettings({}, { DOCKER_HOST: 'tcp://10.0.0.1:2375' }))).toBe(
      'DOCKER_HOST "tcp://10.0.0.1:2375" is not a local engine socket: use unix:///absolute/path.sock',
    );
    expect(usage(() => resolveDeviceSettings({ engine: 'unix://relative.sock' }, {}))).toMatch(
      /^--engine "unix:\/\/relative.sock" is not/,
    );
  });

  it('retry backoff from IMAGE_KEEPER_RETRY_BASE_MS, the pull timeout in seconds, both validated', () => {
    expect(resolveDeviceSettings({ engine: SOCKET }, {})).not.toHaveProperty('retryBaseMs');
    expect(resolveDeviceSettings({ engine: SOCKET }, { IMAGE_KEEPER_RETRY_BASE_MS: '50' }).retryBaseMs).toBe(
      50,
    );
    expect(resolveDeviceSettings({ engine: SOCKET, pullTimeout: '30' }, {}).pullIdleTimeoutMs).toBe(30_000);
    expect(
      usage(() => resolveDeviceSettings({ engine: SOCKET }, { IMAGE_KEEPER_RETRY_BASE_MS: '-1' })),
    ).toMatch(/IMAGE_KEEPER_RETRY_BASE_MS must be an integer/);
    expect(usage(() => resolveDeviceSettings({ engine: SOCKET, pullTimeout: '0' }, {}))).toMatch(
      /--pull-timeout must be an integer of at least 1/,
    );
  });

  it('the crash hook only with test hooks on; otherwise a warning and no hook', () => {
    const off = resolveDeviceSettings({ engine: SOCKET }, { IMAGE_KEEPER_CRASH_AT: 'after-row-stored' });
    expect(off.crash).toBeUndefined();
    expect(off.warnings).toEqual([
      'IMAGE_KEEPER_CRASH_AT ignored: it is a test hook and IMAGE_KEEPER_TEST_HOOKS=1 is not set',
    ]);
    const on = resolveDeviceSettings(
      { engine: SOCKET },
      { IMAGE_KEEPER_CRASH_AT: 'mid-pull:2', IMAGE_KEEPER_TEST_HOOKS: '1' },
    );
    expect(on.crash).toEqual({ point: 'mid-pull', occurrence: 2 });
    expect(on.warnings).toEqual([]);
  });
});
