import { describe, expect, it } from 'vitest';
import { isPowerCut } from '../../core/errors.js';
import { PowerController } from '../../sim/device/power-controller.js';

const thrown = (f: () => void): unknown => {
  try {
    f();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('the power controller', () => {
  it('cuts before the k-th step, and power stays out until the device boots', () => {
    const power = new PowerController();
    power.cutAtCall(2);
    power.tick('db.listRows');
    expect(isPowerCut(thrown(() => power.tick('engine.listImages')))).toBe(true);
    // A core that caught the cut and carried on meets the dark again at its next step or crash point.
    expect(isPowerCut(thrown(() => power.tick('engine.pull')))).toBe(true);
    expect(isPowerCut(thrown(() => power.reach('after-row-stored', 'x')))).toBe(true);
    expect(power.cuts).toBe(1);
    expect(power.calls).toBe(2);
    power.restore();
    expect(thrown(() => power.tick('db.listRows'))).toBeUndefined();
    expect(power.calls).toBe(3);
  });

  it('counts a crash point reached between two layers as a step of its own, and other points as no step', () => {
    const power = new PowerController();
    power.tick('engine.pull');
    power.reach('mid-pull', 'ref after 1 layer(s)');
    power.reach('after-image-complete', 'ref');
    expect(power.calls).toBe(2);
    power.cutAtCall(1);
    expect(isPowerCut(thrown(() => power.reach('mid-pull', 'ref after 2 layer(s)')))).toBe(true);
    expect(power.cutsAt.get('mid-pull')).toBe(1);
  });

  it('attributes a cut before the next port call to the crash point reached just before it', () => {
    const power = new PowerController();
    power.tick('db.insertRow');
    power.reach('after-row-stored', 'ref');
    power.cutAtCall(1);
    expect(isPowerCut(thrown(() => power.tick('engine.pull')))).toBe(true);
    expect(power.cutsAt.get('after-row-stored')).toBe(1);
    expect(power.hits.get('after-row-stored')).toBe(1);
  });
});
