import { describe, expect, it } from 'vitest';
import type { CrashPoint } from '../core/ports/crash-points.js';
import { CountingCrashPoints, crashHookFrom, parseCrashSpec } from './crash-hook.js';

describe('IMAGE_KEEPER_CRASH_AT', () => {
  it('parses <point>[:<occurrence>[:<match>]]; the match keeps its colons', () => {
    expect(parseCrashSpec('after-row-stored')).toEqual({ point: 'after-row-stored', occurrence: 1 });
    expect(parseCrashSpec('mid-pull:3')).toEqual({ point: 'mid-pull', occurrence: 3 });
    expect(parseCrashSpec('after-row-stored::reg.local:5000/app/main@sha256:abc')).toEqual({
      point: 'after-row-stored',
      occurrence: 1,
      match: 'reg.local:5000/app/main@sha256:abc',
    });
    expect(parseCrashSpec('after-kill:2:')).toEqual({ point: 'after-kill', occurrence: 2 });
  });

  it('refuses unknown points and bad occurrences with one line', () => {
    expect(() => parseCrashSpec('after-lunch')).toThrow(
      /unknown crash point 'after-lunch'; known: after-row-stored, /,
    );
    expect(() => parseCrashSpec('mid-pull:0')).toThrow(/occurrence must be a positive integer, got '0'/);
    expect(() => parseCrashSpec('mid-pull:x')).toThrow(/occurrence must be a positive integer/);
  });

  it('is honoured only with IMAGE_KEEPER_TEST_HOOKS=1', () => {
    expect(crashHookFrom({})).toEqual({});
    expect(crashHookFrom({ IMAGE_KEEPER_CRASH_AT: 'mid-pull', IMAGE_KEEPER_TEST_HOOKS: 'yes' })).toEqual({
      warning: 'IMAGE_KEEPER_CRASH_AT ignored: it is a test hook and IMAGE_KEEPER_TEST_HOOKS=1 is not set',
    });
    expect(crashHookFrom({ IMAGE_KEEPER_CRASH_AT: 'mid-pull', IMAGE_KEEPER_TEST_HOOKS: '1' })).toEqual({
      spec: { point: 'mid-pull', occurrence: 1 },
    });
  });
});

describe('CountingCrashPoints', () => {
  it('crashes at the n-th matching reach of the point, and only then', () => {
    const crashes: string[] = [];
    const points = new CountingCrashPoints(
      { point: 'after-row-stored', occurrence: 2, match: 'main' },
      (p, n, d) => crashes.push(`${p}#${n} ${d}`),
    );
    const reach = (p: CrashPoint, d: string): void => points.reach(p, d);
    reach('after-row-stored', 'reg/worker@x');
    reach('after-id-written', 'reg/main@x');
    reach('after-row-stored', 'reg/main@1');
    expect(crashes).toEqual([]);
    reach('after-row-stored', 'reg/main@2');
    reach('after-row-stored', 'reg/main@3');
    expect(crashes).toEqual(['after-row-stored#2 reg/main@2']);
  });
});
