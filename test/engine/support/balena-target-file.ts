/** Writes balena v3 target-state files (one device, one fleet app, one release) for CLI tests. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BalenaServiceSpec {
  readonly id: number;
  readonly imageId: number;
  readonly image: string;
  readonly strategy?: 'delete-then-download' | 'download-then-kill';
}

export interface BalenaReleaseSpec {
  readonly appId: number;
  /** 32 hex characters, like balena's release commits. */
  readonly commit: string;
  readonly releaseId: number;
  readonly services: Readonly<Record<string, BalenaServiceSpec>>;
}

const DEVICE_UUID = '263a4dbe41488fb87214b0032339dbb9';
const APP_UUID = 'a172cedcae47474b615c54d510a5d84a';

export function balenaTarget(release: BalenaReleaseSpec): unknown {
  const services = Object.fromEntries(
    Object.entries(release.services).map(([name, s]) => [
      name,
      {
        id: s.id,
        image_id: s.imageId,
        image: s.image,
        environment: {},
        labels: s.strategy ? { 'io.balena.update.strategy': s.strategy } : {},
        running: true,
      },
    ]),
  );
  return {
    [DEVICE_UUID]: {
      name: 'cli-test-device',
      config: {},
      apps: {
        [APP_UUID]: {
          id: release.appId,
          name: 'cli-test',
          class: 'fleet',
          releases: { [release.commit]: { id: release.releaseId, services, volumes: {}, networks: {} } },
        },
      },
    },
  };
}

/** Writes the release as `<dir>/<name>.json` and returns the path. */
export function writeBalenaTarget(dir: string, name: string, release: BalenaReleaseSpec): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(balenaTarget(release), null, 2)}\n`);
  return path;
}
