/**
 * Tiny test images, built locally with no network at all and pushed to the private registry:
 *
 *   app/base:latest   busybox-static rootfs (docker import of a tar)                 1 layer
 *   app/main:v1       base + shared lib layer (1 MiB) + v1 app layer                 3 layers
 *   app/main:v2       base + the SAME lib layer + v2 app layer                       3 layers
 *   app/worker:v1     base + worker layer                                            2 layers
 *   app/big:v1        base + a ~30 MiB incompressible, seed-derived layer            2 layers
 *
 * Every image has /image-keeper/name holding its own "repository:tag" (without the registry).
 * After pushing, each image's manifest digest and image ID are recorded and the images are
 * REMOVED from the local engine, so tests exercise real pulls.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { socketClient } from '../../../adapters/docker/docker-client.js';
import { deterministicBytes } from './deterministic-bytes.js';
import { runDockerCli } from './docker-cli.js';

export type TestImageName = 'base' | 'mainV1' | 'mainV2' | 'workerV1' | 'bigV1';

export const TEST_IMAGE_NAMES: readonly TestImageName[] = ['base', 'mainV1', 'mainV2', 'workerV1', 'bigV1'];

export interface TestImage {
  readonly name: TestImageName;
  /** Repository path without the registry, e.g. "app/main". */
  readonly path: string;
  readonly tag: string;
  /** "127.0.0.1:PORT/app/main" */
  readonly repository: string;
  /** "127.0.0.1:PORT/app/main:v1" */
  readonly ref: string;
  /** Manifest digest as the registry serves it, "sha256:..." */
  readonly digest: string;
  /** "127.0.0.1:PORT/app/main@sha256:..." */
  readonly digestRef: string;
  /** Image ID (config digest), "sha256:..."; identical after a pull. */
  readonly imageId: string;
  /** RootFS.Layers (uncompressed diff IDs), base first. */
  readonly layers: readonly string[];
  /** Size the engine reported for the built image, bytes. */
  readonly sizeBytes: number;
  /** Content of /image-keeper/name inside the image, e.g. "app/main:v1". */
  readonly marker: string;
}

export type TestImageCatalogue = Readonly<Record<TestImageName, TestImage>>;

export interface BuildTestImagesOptions {
  readonly socketPath: string;
  /** "127.0.0.1:PORT" */
  readonly registryHost: string;
  /** Scratch directory for tars and build contexts (created; left for the caller to delete). */
  readonly workDir: string;
  /** Static busybox to base everything on (default /bin/busybox from busybox-static). */
  readonly busyboxPath?: string;
  /** Size of app/big:v1's top layer (default 30 MiB). */
  readonly bigLayerBytes?: number;
  readonly log?: (line: string) => void;
}

type Files = Readonly<Record<string, string | Buffer>>;

interface DerivedImageSpec {
  readonly name: Exclude<TestImageName, 'base'>;
  readonly path: string;
  readonly tag: string;
  /** One COPY (one layer) per entry, on top of the base. */
  readonly layers: readonly Files[];
}

const BASE_PATH = 'app/base';
const BASE_TAG = 'latest';
/** Fixed mtime for every generated file, so identical content gives identical layers. */
const FIXED_TIME = new Date('2024-01-01T00:00:00Z');
const BUSYBOX_APPLETS = [
  'sh',
  'ash',
  'cat',
  'echo',
  'env',
  'false',
  'head',
  'id',
  'kill',
  'ls',
  'mkdir',
  'ps',
  'rm',
  'sha256sum',
  'sleep',
  'tail',
  'touch',
  'true',
  'uname',
  'wc',
  'date',
  'ip',
];

function derivedSpecs(bigLayerBytes: number): DerivedImageSpec[] {
  const sharedLib: Files = {
    'opt/app/lib/libapp.bin': deterministicBytes('app/main shared lib', 1024 * 1024),
  };
  const appLayer = (version: string): Files => ({
    'opt/app/VERSION': `${version}\n`,
    'opt/app/bin/app': `#!/bin/sh\necho "app/main ${version}"\n`,
    'image-keeper/name': `app/main:${version}\n`,
  });
  return [
    { name: 'mainV1', path: 'app/main', tag: 'v1', layers: [sharedLib, appLayer('v1')] },
    { name: 'mainV2', path: 'app/main', tag: 'v2', layers: [sharedLib, appLayer('v2')] },
    {
      name: 'workerV1',
      path: 'app/worker',
      tag: 'v1',
      layers: [
        {
          'opt/worker/bin/worker': '#!/bin/sh\necho "app/worker v1"\n',
          'opt/worker/data.bin': deterministicBytes('app/worker v1', 64 * 1024),
          'image-keeper/name': 'app/worker:v1\n',
        },
      ],
    },
    {
      name: 'bigV1',
      path: 'app/big',
      tag: 'v1',
      layers: [
        {
          'opt/big/blob.bin': deterministicBytes('app/big v1', bigLayerBytes),
          'image-keeper/name': 'app/big:v1\n',
        },
      ],
    },
  ];
}

/** Builds, pushes and removes the catalogue; returns what the registry now serves. */
export async function buildTestImages(options: BuildTestImagesOptions): Promise<TestImageCatalogue> {
  const log = options.log ?? (() => undefined);
  const busybox = options.busyboxPath ?? '/bin/busybox';
  if (!existsSync(busybox))
    throw new Error(`${busybox} is missing: install busybox-static (scripts/install-engine-deps.sh)`);
  const docker = socketClient(options.socketPath, { timeoutMs: 120_000 });
  const cli = (args: readonly string[]) => runDockerCli(options.socketPath, args);
  const repo = (path: string) => `${options.registryHost}/${path}`;
  const started = Date.now();
  mkdirSync(options.workDir, { recursive: true });

  // 1. Base: docker import of a deterministic tar of a busybox-only rootfs.
  const baseRef = `${repo(BASE_PATH)}:${BASE_TAG}`;
  const rootfs = join(options.workDir, 'base-rootfs');
  writeFiles(rootfs, { 'bin/busybox': '', 'image-keeper/name': `${BASE_PATH}:${BASE_TAG}\n` });
  spawnChecked('cp', ['--preserve=mode', busybox, join(rootfs, 'bin/busybox')]);
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const applet of BUSYBOX_APPLETS) spawnChecked('ln', ['-sf', 'busybox', join(rootfs, 'bin', applet)]);
  mkdirSync(join(rootfs, 'tmp'), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  const baseTar = join(options.workDir, 'base-rootfs.tar');
  spawnChecked('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    `--mtime=@${FIXED_TIME.getTime() / 1000}`,
    '-C',
    rootfs,
    '-cf',
    baseTar,
    '.',
  ]);
  await cli([
    'import',
    '--change',
    'CMD ["/bin/sh"]',
    '--message',
    'image-keeper test base',
    baseTar,
    baseRef,
  ]);
  log(`images: imported ${baseRef}`);

  // 2. Derived images: classic builder, FROM the local base (never pulled), one COPY per layer.
  const specs = derivedSpecs(options.bigLayerBytes ?? 30 * 1024 * 1024);
  for (const spec of specs) {
    const context = join(options.workDir, `ctx-${spec.name}`);
    const dockerfile = [`FROM ${baseRef}`];
    spec.layers.forEach((files, index) => {
      writeFiles(join(context, `layer${index}`), files);
      dockerfile.push(`COPY layer${index}/ /`);
    });
    dockerfile.push(`LABEL io.image-keeper.test-image=${spec.name}`);
    dockerfile.push('CMD ["/bin/sh", "-c", "cat /image-keeper/name"]');
    writeFileSync(join(context, 'Dockerfile'), `${dockerfile.join('\n')}\n`);
    await cli([
      'build',
      '--pull=false',
      '--network',
      'none',
      '-t',
      `${repo(spec.path)}:${spec.tag}`,
      context,
    ]);
    log(`images: built ${repo(spec.path)}:${spec.tag}`);
  }

  // 3. Push everything, then record digests and IDs.
  const all: { name: TestImageName; path: string; tag: string }[] = [
    { name: 'base', path: BASE_PATH, tag: BASE_TAG },
    ...specs.map(({ name, path, tag }) => ({ name, path, tag })),
  ];
  for (const image of all) await cli(['push', `${repo(image.path)}:${image.tag}`]);
  log(`images: pushed ${all.length} images to ${options.registryHost}`);

  const catalogue = {} as Record<TestImageName, TestImage>;
  for (const image of all) {
    const repository = repo(image.path);
    const ref = `${repository}:${image.tag}`;
    const info = await docker.getImage(ref).inspect();
    const digestRef = (info.RepoDigests ?? []).find((d) => d.startsWith(`${repository}@sha256:`));
    if (digestRef === undefined)
      throw new Error(
        `${ref} has no RepoDigest for ${repository} after push: ${JSON.stringify(info.RepoDigests)}`,
      );
    catalogue[image.name] = {
      name: image.name,
      path: image.path,
      tag: image.tag,
      repository,
      ref,
      digest: digestRef.slice(repository.length + 1),
      digestRef,
      imageId: info.Id,
      layers: info.RootFS.Layers ?? [],
      sizeBytes: info.Size,
      marker: `${image.path}:${image.tag}`,
    };
  }
  assertLayerSharing(catalogue);

  // 4. Remove them locally (children first), and check nothing at all is left behind.
  for (const image of [...all].reverse()) await cli(['rmi', `${repo(image.path)}:${image.tag}`]);
  const left = await docker.listImages({ all: true });
  if (left.length > 0) {
    throw new Error(
      `images left in the private engine after removing the catalogue: ${JSON.stringify(left.map((i) => [i.Id, i.RepoTags]))}`,
    );
  }
  rmSync(options.workDir, { recursive: true, force: true });
  log(`images: catalogue ready in ${Date.now() - started} ms`);
  return catalogue;
}

function assertLayerSharing(catalogue: Record<TestImageName, TestImage>): void {
  const { base, mainV1, mainV2, workerV1, bigV1 } = catalogue;
  const problems: string[] = [];
  if (base.layers.length !== 1) problems.push(`base has ${base.layers.length} layers, expected 1`);
  for (const image of [mainV1, mainV2, workerV1, bigV1]) {
    if (image.layers[0] !== base.layers[0]) problems.push(`${image.ref} does not start with the base layer`);
  }
  if (mainV1.layers.length !== 3 || mainV2.layers.length !== 3)
    problems.push('app/main images should have 3 layers');
  if (mainV1.layers[1] !== mainV2.layers[1]) problems.push('app/main v1 and v2 do not share the lib layer');
  if (mainV1.layers[2] === mainV2.layers[2]) problems.push('app/main v1 and v2 have the same top layer');
  if (problems.length > 0)
    throw new Error(`test image catalogue is not shaped as intended: ${problems.join('; ')}`);
}

function writeFiles(root: string, files: Files): void {
  for (const [relative, content] of Object.entries(files)) {
    const file = join(root, relative);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    chmodSync(file, relative.includes('/bin/') ? 0o755 : 0o644);
    utimesSync(file, FIXED_TIME, FIXED_TIME);
  }
}

function spawnChecked(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr}`);
  }
}
