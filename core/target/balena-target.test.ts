import { describe, expect, it } from 'vitest';

import { isKeeperError, type KeeperError } from '../errors.js';
import firstInstall from '../../scenarios/targets/balena-first-install.json' with { type: 'json' };
import update from '../../scenarios/targets/balena-update.json' with { type: 'json' };
import { parseBalenaTarget, strategyFromLabels } from './balena-target.js';

const DEVICE = '263a4dbe41488fb87214b0032339dbb9';
const APP = 'a172cedcae47474b615c54d510a5d84a';
const C1 = '4ba10998a6ebceb06ecf1a94bb2970c9';
const C2 = 'b9469a95e64ad83017429739bd95b527';
const MAIN_V1 =
  '127.0.0.1:5000/gateway/main@sha256:576f074237d235148bf72a391bef35d1c72d0fd627c1773fff7bda5dddf3d464';
const MAIN_V2 =
  '127.0.0.1:5000/gateway/main@sha256:6231d38625a4eef9c143d9523630515abab8a8742defa92724330e445614236c';
const WORKER =
  '127.0.0.1:5000/gateway/worker@sha256:50f78b480f466c542a8fc083c27c1143d0d7f571dbac6ede72f7d70cc3f3fec2';
const DIGEST = 'sha256:' + 'ab'.repeat(32);

function v3(apps: Record<string, unknown>, device = DEVICE): Record<string, unknown> {
  return { [device]: { name: 'dev', config: {}, apps } };
}

function fleetApp(
  id: number,
  commit: string,
  services: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    id,
    name: `app${id}`,
    class: 'fleet',
    releases: { [commit]: { id: id * 10, services } },
    ...extra,
  };
}

function service(id: number, image: string, extra: Record<string, unknown> = {}) {
  return { id, image_id: id * 100, image, environment: {}, labels: {}, ...extra };
}

function rejection(value: unknown, options = {}): KeeperError {
  try {
    parseBalenaTarget(value, { label: 't.json', ...options });
  } catch (error) {
    expect(isKeeperError(error, 'INVALID_TARGET')).toBe(true);
    return error as KeeperError;
  }
  throw new Error('expected INVALID_TARGET');
}

describe('parseBalenaTarget (v3)', () => {
  it('maps a first install of a multi-service app', () => {
    const result = parseBalenaTarget(firstInstall);
    expect(result.format).toBe('v3');
    expect(result.skipped).toEqual([]);
    expect(result.target).toEqual({
      services: [
        {
          name: MAIN_V1,
          appId: 1701,
          serviceId: 31001,
          serviceName: 'main',
          imageId: 5400001,
          releaseId: 220001,
          commit: C1,
          strategy: 'download-then-kill',
        },
        {
          name: WORKER,
          appId: 1701,
          serviceId: 31002,
          serviceName: 'worker',
          imageId: 5400002,
          releaseId: 220001,
          commit: C1,
          strategy: 'delete-then-download',
        },
      ],
      dependent: [],
    });
  });

  it('maps an update that changes one image and keeps the other digest under the new commit', () => {
    const { target } = parseBalenaTarget(update);
    expect(target.services.map((s) => [s.serviceName, s.name, s.commit, s.releaseId, s.imageId])).toEqual([
      ['main', MAIN_V2, C2, 220002, 5400003],
      ['worker', WORKER, C2, 220002, 5400004],
    ]);
    const before = parseBalenaTarget(firstInstall).target.services;
    expect(target.services[1]?.name).toBe(before[1]?.name);
    expect(target.services[0]?.name).not.toBe(before[0]?.name);
  });

  it('keeps two services that share one image as two services with one name', () => {
    const image = `reg.local/app/shared@${DIGEST}`;
    const { target } = parseBalenaTarget(
      v3({ [APP]: fleetApp(1, C1, { s1: service(11, image), s2: service(12, image) }) }),
    );
    expect(target.services.map((s) => [s.serviceName, s.serviceId, s.imageId, s.name])).toEqual([
      ['s1', 11, 1100, image],
      ['s2', 12, 1200, image],
    ]);
  });

  it('skips apps that are not fleet apps, saying why', () => {
    const result = parseBalenaTarget(
      v3({
        sv: {
          id: 2,
          name: 'balena-supervisor',
          class: 'app',
          releases: { c: { id: 1, services: { x: {} } } },
        },
        host: { id: 3, name: 'hostapp', class: 'fleet', is_host: true, releases: {} },
        blk: { id: 4, name: 'block', class: 'block' },
        [APP]: fleetApp(1, C1, { main: service(11, `reg.local/a@${DIGEST}`) }),
      }),
    );
    expect(result.target.services.map((s) => s.serviceName)).toEqual(['main']);
    expect(result.skipped).toEqual([
      { appUuid: 'sv', name: 'balena-supervisor', reason: "class 'app' is not a fleet app" },
      { appUuid: 'host', name: 'hostapp', reason: 'host OS app (is_host)' },
      { appUuid: 'blk', name: 'block', reason: "class 'block' is not a fleet app" },
    ]);
  });

  it('reads a missing class as fleet, numeric-string IDs as numbers and an app without release as empty', () => {
    const app = {
      id: '7',
      name: 'a',
      releases: { [C1]: { id: '70', services: { m: { id: '1', image_id: '2', image: 'reg.local/m:v1' } } } },
    };
    const { target } = parseBalenaTarget(v3({ [APP]: app, other: { id: 8, name: 'b', releases: {} } }));
    expect(target.services).toEqual([
      {
        name: 'reg.local/m:v1',
        appId: 7,
        serviceId: 1,
        serviceName: 'm',
        imageId: 2,
        releaseId: 70,
        commit: C1,
        strategy: 'download-then-kill',
      },
    ]);
  });

  it('maps other devices to dependent images when the local device is named', () => {
    const state = {
      ...v3({ [APP]: fleetApp(1, C1, { main: service(11, `reg.local/a@${DIGEST}`) }) }),
      ...v3({ dep: fleetApp(9, C2, { d: service(91, `reg.local/d@${DIGEST}`) }) }, 'other-device'),
    };
    const { target } = parseBalenaTarget(state, { deviceUuid: DEVICE });
    expect(target.services.map((s) => s.serviceName)).toEqual(['main']);
    expect(target.dependent).toEqual([
      {
        name: `reg.local/d@${DIGEST}`,
        appId: 9,
        serviceId: 91,
        serviceName: 'd',
        imageId: 9100,
        releaseId: 90,
        commit: C2,
      },
    ]);
    expect(rejection(state).message).toBe(
      't.json: target state names 2 devices; say which one is local (at (root))',
    );
  });

  it('supports only the two strategies that matter here', () => {
    expect(strategyFromLabels({ 'io.balena.update.strategy': 'delete-then-download' })).toBe(
      'delete-then-download',
    );
    for (const other of ['download-then-kill', 'kill-then-download', 'hand-over', 'nonsense']) {
      expect(strategyFromLabels({ 'io.balena.update.strategy': other })).toBe('download-then-kill');
    }
    expect(strategyFromLabels(undefined)).toBe('download-then-kill');
  });
});

describe('parseBalenaTarget (v2)', () => {
  it('maps local apps keyed by app ID or UUID, services keyed by service ID', () => {
    const state = {
      local: {
        name: 'white-tree',
        config: {},
        apps: {
          mytestuuid: {
            appId: 1623449,
            name: 'pi4test',
            commit: 'c23e5a0f49d31ea8ca2a4866e1ba8482',
            releaseId: 1551563,
            services: {
              '482141': {
                imageId: 2781425,
                serviceName: 'main',
                image: `registry2.balena-cloud.com/v2/eed0b001166e66b841336aba6ca7ea8f@${DIGEST}`,
                labels: { 'io.balena.update.strategy': 'delete-then-download' },
                running: true,
              },
            },
          },
        },
      },
      dependent: {
        apps: { '55': { name: 'dev', image: `reg.local/dep@${DIGEST}`, commit: 'dc', releaseId: 5 } },
        devices: {},
      },
    };
    const result = parseBalenaTarget(state);
    expect(result.format).toBe('v2');
    expect(result.target.services).toEqual([
      {
        name: `registry2.balena-cloud.com/v2/eed0b001166e66b841336aba6ca7ea8f@${DIGEST}`,
        appId: 1623449,
        serviceId: 482141,
        serviceName: 'main',
        imageId: 2781425,
        releaseId: 1551563,
        commit: 'c23e5a0f49d31ea8ca2a4866e1ba8482',
        strategy: 'delete-then-download',
      },
    ]);
    expect(
      result.target.dependent.map((d) => [d.name, d.appId, d.serviceName, d.releaseId, d.commit]),
    ).toEqual([[`reg.local/dep@${DIGEST}`, 55, 'dev', 5, 'dc']]);
  });

  it('names the path of a v2 problem', () => {
    const state = {
      local: {
        apps: {
          '1': {
            name: 'a',
            releaseId: 1,
            services: { '2': { serviceName: 'm', image: 'reg.local/m', imageId: 3 } },
          },
        },
      },
    };
    expect(rejection(state).message).toBe(
      `t.json: missing required key 'commit' (at local.apps["1"].commit)`,
    );
  });
});

describe('malformed balena input', () => {
  interface Parts {
    app: Record<string, unknown>;
    release: Record<string, unknown>;
    service: Record<string, unknown>;
  }
  /** A valid one-service state, edited by `edit` before use. */
  const base = (edit: (parts: Parts) => void = () => undefined) => {
    const parts: Parts = { app: {}, release: {}, service: service(11, `reg.local/a@${DIGEST}`) };
    parts.release = { id: 10, services: { main: parts.service } };
    parts.app = { id: 1, name: 'app1', class: 'fleet', releases: { [C1]: parts.release } };
    edit(parts);
    return v3({ [APP]: parts.app });
  };
  const servicePath = `["${DEVICE}"].apps.${APP}.releases["${C1}"].services.main`;

  it('names the JSON path of a missing field', () => {
    const state = base(({ service }) => delete service['image_id']);
    expect(rejection(state).message).toBe(
      `t.json: missing required key 'image_id' (at ${servicePath}.image_id)`,
    );
  });

  it('names the JSON path of a wrong type', () => {
    const state = base(({ release }) => (release['id'] = 'one'));
    expect(rejection(state).message).toBe(
      `t.json: invalid input: expected number, received string (at ["${DEVICE}"].apps.${APP}.releases["${C1}"].id)`,
    );
  });

  it('names the JSON path of an invalid image reference', () => {
    const state = base(({ service }) => (service['image'] = 'Reg.local/UPPER@sha256:1'));
    const message = rejection(state).message;
    expect(message.startsWith('t.json: invalid image reference')).toBe(true);
    expect(message.endsWith(`(at ${servicePath}.image)`)).toBe(true);
  });

  it('rejects two releases of one app and an unknown app class', () => {
    const state = base(
      ({ app, release }) => (app['releases'] = { [C1]: release, [C2]: { id: 2, services: {} } }),
    );
    expect(rejection(state).message).toBe(
      `t.json: app has 2 releases; a target names at most one (at ["${DEVICE}"].apps.${APP}.releases)`,
    );
    const odd = base(({ app }) => (app['class'] = 'weird'));
    expect(rejection(odd).message).toMatch(
      /^t\.json: invalid option: expected one of "fleet"\|"app"\|"block" \(at .*\.class\)$/,
    );
  });

  it('rejects two apps with one id, and two services of an app with one id (the keeper would switch between them for ever)', () => {
    const OTHER = 'b'.repeat(32);
    const twoApps = v3({
      [APP]: fleetApp(1701, C1, { main: service(11, `reg.local/a@${DIGEST}`) }),
      [OTHER]: fleetApp(1701, C2, { main: service(12, `reg.local/b@${DIGEST}`) }),
    });
    expect(rejection(twoApps).message).toBe(
      `t.json: app id 1701 appears twice (["${DEVICE}"].apps.${APP} and ["${DEVICE}"].apps.${OTHER}); each app needs its own id (at ["${DEVICE}"].apps.${OTHER}.id)`,
    );
    const twoServices = v3({
      [APP]: fleetApp(1, C1, {
        main: service(11, `reg.local/a@${DIGEST}`),
        side: service(11, `reg.local/b@${DIGEST}`),
      }),
    });
    expect(rejection(twoServices).message).toBe(
      `t.json: serviceId 11 appears twice in app 1 (services 'main' and 'side'); each service needs its own id (at ["${DEVICE}"].apps.${APP}.releases["${C1}"].services.side.id)`,
    );
    // Another device may run the same app: its images are dependent, not a duplicate.
    const attached = {
      ...v3({ [APP]: fleetApp(1, C1, { main: service(11, `reg.local/a@${DIGEST}`) }) }),
      ...v3({ [APP]: fleetApp(1, C1, { main: service(11, `reg.local/a@${DIGEST}`) }) }, 'c'.repeat(32)),
    };
    expect(parseBalenaTarget(attached, { deviceUuid: DEVICE }).target.dependent).toHaveLength(1);
  });

  it('rejects duplicate app and service ids in v2 too', () => {
    const app = (appId: number, services: Record<string, unknown>) => ({
      appId,
      commit: 'c1',
      releaseId: 1,
      services,
    });
    const svc = (serviceName: string) => ({ serviceName, image: `reg.local/m@${DIGEST}`, imageId: 3 });
    expect(
      rejection({ local: { apps: { '1': app(5, { '2': svc('m') }), '7': app(5, { '3': svc('n') }) } } })
        .message,
    ).toBe(
      't.json: app id 5 appears twice (local.apps["1"] and local.apps["7"]); each app needs its own id (at local.apps["7"].appId)',
    );
    expect(rejection({ local: { apps: { '1': app(1, { '2': svc('m'), '3': svc('m') }) } } }).message).toBe(
      `t.json: service 'm' appears twice in app 1 (at local.apps["1"].services["3"].serviceName)`,
    );
    expect(
      rejection({ local: { apps: { '1': app(1, { '2': svc('m'), '3': { ...svc('n'), serviceId: 2 } }) } } })
        .message,
    ).toBe(
      `t.json: serviceId 2 appears twice in app 1 (services 'm' and 'n'); each service needs its own id (at local.apps["1"].services["3"].serviceId)`,
    );
  });

  it('rejects values that are not target states at all', () => {
    expect(rejection([]).message).toBe('t.json: invalid input: expected record, received array (at (root))');
    expect(rejection({}).message).toBe('t.json: target state names no device (at (root))');
    expect(rejection({ [DEVICE]: { name: 'x' } }).message).toBe(
      `t.json: missing required key 'apps' (at ["${DEVICE}"].apps)`,
    );
  });
});
