import { describe, expect, it } from 'vitest';

import { isKeeperError } from '../errors.js';
import firstInstall from '../../scenarios/targets/balena-first-install.json' with { type: 'json' };
import { deriveImageId, deriveReleaseId, deriveServiceId, findServiceIdCollision } from './derived-ids.js';
import { formatJsonPath } from './json-path.js';
import { detectTargetFormat, parseTargetJson } from './parse-target.js';

const DIGEST = 'sha256:' + 'cd'.repeat(32);

function message(value: unknown): string {
  try {
    parseTargetJson(value, 'x.json');
  } catch (error) {
    expect(isKeeperError(error, 'INVALID_TARGET')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected INVALID_TARGET');
}

describe('detectTargetFormat', () => {
  it('tells balena v3, balena v2 and our own format apart', () => {
    expect(detectTargetFormat(firstInstall)).toBe('balena-v3');
    expect(detectTargetFormat({ local: { apps: {} } })).toBe('balena-v2');
    expect(detectTargetFormat({ apps: [] })).toBe('own');
    expect(detectTargetFormat({ dependent: [] })).toBe('own');
    expect(detectTargetFormat({})).toBe('own');
    expect(detectTargetFormat('nope')).toBe('own');
  });
});

describe('parseTargetJson, own format', () => {
  it('fills derived IDs and the default strategy', () => {
    const target = parseTargetJson(
      {
        apps: [
          {
            id: 1,
            name: 'app',
            commit: 'c2',
            services: [
              { name: 'main', image: `reg.local/app/main@${DIGEST}` },
              { id: 7, name: 'db', image: 'reg.local/db:15', imageId: 70, strategy: 'delete-then-download' },
            ],
          },
          { id: 2, commit: 'k1', releaseId: 99, services: [{ name: 'main', image: 'busybox:latest' }] },
        ],
        dependent: [{ app: 9, service: 'dep', image: `reg.local/dep@${DIGEST}`, commit: 'd1' }],
      },
      'x.json',
    );
    const main = deriveServiceId('main');
    expect(target.services).toEqual([
      {
        name: `reg.local/app/main@${DIGEST}`,
        appId: 1,
        serviceId: main,
        serviceName: 'main',
        imageId: deriveImageId(1, main, 'c2'),
        releaseId: deriveReleaseId('c2'),
        commit: 'c2',
        strategy: 'download-then-kill',
      },
      {
        name: 'reg.local/db:15',
        appId: 1,
        serviceId: 7,
        serviceName: 'db',
        imageId: 70,
        releaseId: deriveReleaseId('c2'),
        commit: 'c2',
        strategy: 'delete-then-download',
      },
      {
        name: 'docker.io/library/busybox:latest',
        appId: 2,
        serviceId: main,
        serviceName: 'main',
        imageId: deriveImageId(2, main, 'k1'),
        releaseId: 99,
        commit: 'k1',
        strategy: 'download-then-kill',
      },
    ]);
    const dep = deriveServiceId('dep');
    expect(target.dependent).toEqual([
      {
        name: `reg.local/dep@${DIGEST}`,
        appId: 9,
        serviceId: dep,
        serviceName: 'dep',
        imageId: deriveImageId(9, dep, 'd1'),
        releaseId: deriveReleaseId('d1'),
        commit: 'd1',
      },
    ]);
  });

  it('accepts the empty target', () => {
    expect(parseTargetJson({}, 'x.json')).toEqual({ services: [], dependent: [] });
  });

  it('reads balena shapes too', () => {
    expect(parseTargetJson(firstInstall, 'f.json').services.map((s) => s.serviceName)).toEqual([
      'main',
      'worker',
    ]);
  });

  it('gives one line naming the JSON path for each kind of problem', () => {
    expect(message({ apps: [{ id: 1, commit: 'c', services: [{ name: 'm', image: 'a2' }] }] })).toBe(
      "x.json: image 'a2' is a bare name; a target file needs a full reference (such as a2:latest) (at apps[0].services[0].image)",
    );
    expect(message({ apps: [{ id: 1, commit: 'c', services: [{ name: 'm', image: 'Reg/A:1' }] }] })).toMatch(
      /^x\.json: invalid image reference "Reg\/A:1": .* \(at apps\[0\]\.services\[0\]\.image\)$/,
    );
    expect(
      message({ apps: [{ id: 1, commit: 'c', services: [{ name: 'm', image: 'reg/a:1', colour: 1 }] }] }),
    ).toBe("x.json: unknown key 'colour' (at apps[0].services[0].colour)");
    expect(message({ apps: [{ id: 1, services: [] }] })).toBe(
      "x.json: missing required key 'commit' (at apps[0].commit)",
    );
    expect(message({ apps: [{ id: 1, commit: 12 }] })).toBe(
      'x.json: commit must be a string (quote a numeric commit) (at apps[0].commit)',
    );
    expect(
      message({
        apps: [
          {
            id: 1,
            commit: 'c',
            services: [
              { name: 'm', image: 'reg/a:1' },
              { name: 'm', image: 'reg/b:1' },
            ],
          },
        ],
      }),
    ).toBe("x.json: service 'm' appears twice in app 1 (at apps[0].services[1].name)");
    expect(message({ apps: [{ id: 1, commit: '' }] })).toBe(
      'x.json: commit must not be empty (at apps[0].commit)',
    );
    expect(message({ apps: 'all' })).toBe('x.json: invalid input: expected array, received string (at apps)');
    expect(
      message({
        apps: [
          { id: -1, commit: 'c' },
          { id: 'x', commit: 'c' },
        ],
      }),
    ).toBe('x.json: too small: expected number to be >=0 (and 1 more) (at apps[0].id)');
  });
});

describe('derived IDs', () => {
  it('are stable, in their ranges, and the same wherever a service is named', () => {
    expect(deriveServiceId('main')).toBe(deriveServiceId('main'));
    expect(deriveServiceId('main')).not.toBe(deriveServiceId('worker'));
    for (const name of ['main', 'worker', 'a', 'supervisor', 'x'.repeat(200)]) {
      expect(deriveServiceId(name)).toBeGreaterThanOrEqual(10_000);
      expect(deriveServiceId(name)).toBeLessThan(100_000);
    }
    expect(deriveReleaseId('c1')).toBeGreaterThanOrEqual(100_000);
    expect(deriveReleaseId('c1')).toBeLessThan(1_000_000);
    expect(deriveImageId(1, 2, 'c1')).not.toBe(deriveImageId(1, 2, 'c2'));
  });

  it('finds two names that derive one serviceId', () => {
    expect(findServiceIdCollision(['main', 'worker', 'main'])).toBeUndefined();
    const names = Array.from({ length: 2000 }, (_, i) => `s${i}`);
    const collision = findServiceIdCollision(names);
    expect(collision).toBeDefined();
    const [a, b, id] = collision ?? ['', '', 0];
    expect(deriveServiceId(a)).toBe(id);
    expect(deriveServiceId(b)).toBe(id);
  });

  it('formats paths', () => {
    expect(formatJsonPath([])).toBe('(root)');
    expect(formatJsonPath(['steps', 2, 'power-cut', 'at'])).toBe('steps[2].power-cut.at');
    expect(formatJsonPath(['labels', 'io.balena.update.strategy', 0])).toBe(
      'labels["io.balena.update.strategy"][0]',
    );
  });
});

describe('duplicate ids in our own format', () => {
  it('rejects two apps with one id and two services of an app with one serviceId', () => {
    expect(
      message({
        apps: [
          { id: 1, commit: 'c1', services: [{ name: 'main', image: 'reg/a:1' }] },
          { id: 1, commit: 'c2', services: [{ name: 'x', image: 'reg/b:1' }] },
        ],
      }),
    ).toBe('x.json: app id 1 appears twice (apps[0] and apps[1]); each app needs its own id (at apps[1].id)');
    expect(
      message({
        apps: [
          {
            id: 1,
            commit: 'c1',
            services: [
              { id: 5, name: 'a', image: 'reg/a:1' },
              { id: 5, name: 'b', image: 'reg/b:1' },
            ],
          },
        ],
      }),
    ).toBe(
      "x.json: serviceId 5 appears twice in app 1 (services 'a' and 'b'); each service needs its own id (at apps[0].services[1].id)",
    );
    // An explicit id equal to the one another service derives from its name.
    const derived = deriveServiceId('main');
    expect(
      message({
        apps: [
          {
            id: 1,
            commit: 'c1',
            services: [
              { name: 'main', image: 'reg/a:1' },
              { id: derived, name: 'b', image: 'reg/b:1' },
            ],
          },
        ],
      }),
    ).toBe(
      `x.json: serviceId ${derived} appears twice in app 1 (services 'main' and 'b'); each service needs its own id (at apps[0].services[1].id)`,
    );
    // The same service id in two apps is fine.
    expect(
      parseTargetJson(
        {
          apps: [
            { id: 1, commit: 'c1', services: [{ id: 5, name: 'a', image: 'reg/a:1' }] },
            { id: 2, commit: 'c1', services: [{ id: 5, name: 'a', image: 'reg/a:1' }] },
          ],
        },
        'x.json',
      ).services,
    ).toHaveLength(2);
  });
});
