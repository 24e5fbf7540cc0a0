/**
 * The in-process power cut of the engine scenario runner (support/in-process-power.ts) fires like the
 * simulator's PowerController: at the armed point's n-th matching reach, as a POWER_CUT the core never
 * catches; power then stays out (crash points and port calls throw) until the device boots.
 */
import { describe, expect, test } from 'vitest';
import { isPowerCut } from '../../core/errors.js';
import { InProcessPower, powered } from './support/in-process-power.js';

const cut = { label: 'test', why: 'test' } as const;

function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('in-process power cuts', () => {
  test('fire at the n-th reach whose detail matches, then power stays out until restore', () => {
    const power = new InProcessPower();
    power.arm({ ...cut, at: 'after-save', match: 'app/a@', occurrence: 2, resume: false });
    power.reach('after-save', 'reg/app/b@sha256:1');
    power.reach('after-save', 'reg/app/a@sha256:1');
    power.reach('after-kill', 'reg/app/a@sha256:1');
    expect(power.off).toBe(false);
    const error = thrown(() => power.reach('after-save', 'reg/app/a@sha256:2'));
    expect(isPowerCut(error)).toBe(true);
    expect(power.off).toBe(true);
    expect(power.lastCutResumes).toBe(false);
    expect(power.fired.map((c) => c.at)).toEqual(['after-save']);
    expect(power.pending).toBe(false);
    // Still out: any crash point throws again, armed or not.
    expect(isPowerCut(thrown(() => power.reach('after-start', 'main')))).toBe(true);
    power.restore();
    expect(() => power.reach('after-save', 'reg/app/a@sha256:3')).not.toThrow();
  });

  test('two different cuts armed at once fire each at its own point', () => {
    const power = new InProcessPower();
    power.arm({ ...cut, at: 'after-id-written', match: 'a2', occurrence: 1 });
    power.arm({ ...cut, at: 'after-image-complete', match: 'b2', occurrence: 1 });
    expect(isPowerCut(thrown(() => power.reach('after-id-written', 'x/a2')))).toBe(true);
    power.restore();
    expect(power.pending).toBe(true);
    power.reach('after-id-written', 'x/a2');
    expect(isPowerCut(thrown(() => power.reach('after-image-complete', 'x/b2')))).toBe(true);
    expect(power.fired.map((c) => c.at)).toEqual(['after-id-written', 'after-image-complete']);
  });

  test('a powered port refuses every call while power is out, overrides included', async () => {
    const power = new InProcessPower();
    const calls: string[] = [];
    const port = {
      flag: true,
      read: async () => calls.push('read'),
      pull: async () => calls.push('pull'),
    };
    const wrapped = powered(port, power, { pull: async () => calls.push('override') });
    await wrapped.read();
    await wrapped.pull();
    expect(wrapped.flag).toBe(true);
    power.arm({ ...cut, at: 'after-kill', occurrence: 1 });
    thrown(() => power.reach('after-kill', 'c1'));
    await expect(wrapped.read()).rejects.toSatisfy(isPowerCut);
    await expect(wrapped.pull()).rejects.toSatisfy(isPowerCut);
    expect(calls).toEqual(['read', 'override']);
    power.restore();
    await wrapped.read();
    expect(calls).toEqual(['read', 'override', 'read']);
  });
});
