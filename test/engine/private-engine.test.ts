/**
 * The engine test infrastructure itself: the private dockerd is ours (not the machine's), pulls
 * come from the private registry and share layers, containers run with network mode none, and a
 * dockerd killed with SIGKILL comes back on the same data-root with its images.
 */
import { realpathSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { GenericContainer, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { runDockerCli } from './support/docker-cli.js';
import { ENGINE_INFO_ENV, readEngineInfo } from './support/engine-info.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { pullImage } from './support/pull-image.js';
import { resetEngine } from './support/reset-engine.js';

const info = inject('engine');
const engine = PrivateEngine.attach(info.engine);
const docker = engine.client(60_000);
const { base, mainV1, mainV2, workerV1 } = info.images;

describe('private engine', () => {
  beforeAll(async () => {
    // Before testcontainers or anything reading DOCKER_HOST runs: the private engine must answer.
    await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
    await resetEngine(docker);
  });

  afterAll(async () => {
    // Leave a running, empty engine for the next test file whatever happened here.
    await engine.ensureRunning();
    await resetEngine(docker);
  });

  test('is the private dockerd, not /var/run/docker.sock', async () => {
    expect(process.env['DOCKER_HOST']).toBe(`unix://${info.socketPath}`);
    expect(info.socketPath.startsWith(info.rootDir)).toBe(true);
    for (const systemSocket of ['/var/run/docker.sock', '/run/docker.sock']) {
      expect(info.socketPath).not.toBe(systemSocket);
      expect(realpathSync(info.socketPath)).not.toBe(systemSocket);
    }
    // The docker CLI, pointed only at our socket, sees our data-root.
    const { stdout } = await runDockerCli(info.socketPath, [
      'info',
      '--format',
      '{{.DockerRootDir}}|{{.Driver}}',
    ]);
    expect(stdout.trim()).toBe(`${info.dataRoot}|${info.storageDriver}`);
    // So does testcontainers, which picks its engine from DOCKER_HOST.
    const runtime = await getContainerRuntimeClient();
    const runtimeInfo = (await runtime.container.dockerode.info()) as { DockerRootDir: string };
    expect(runtimeInfo.DockerRootDir).toBe(info.dataRoot);
    // And child processes can find the same facts.
    expect(readEngineInfo(process.env[ENGINE_INFO_ENV]).socketPath).toBe(info.socketPath);
  });

  test('registry serves the catalogue and the engine starts with no images', async () => {
    const response = await fetch(`${info.registry.url}/v2/_catalog`);
    expect(response.status).toBe(200);
    const { repositories } = (await response.json()) as { repositories: string[] };
    expect(repositories.sort()).toEqual(['app/base', 'app/big', 'app/main', 'app/worker']);
    expect(await docker.listImages({ all: true })).toEqual([]);
  });

  test('pulls app/main:v1 then v2 from the private registry; v2 reuses the shared layers', async () => {
    const v1 = await pullImage(docker, mainV1.ref);
    expect(v1.status).toContain('Downloaded newer image');
    expect(v1.digest).toBe(mainV1.digest);
    expect(v1.imageId).toBe(mainV1.imageId);

    const v2 = await pullImage(docker, mainV2.ref);
    expect(v2.digest).toBe(mainV2.digest);
    expect(v2.imageId).toBe(mainV2.imageId);

    const v1Layers = (await docker.getImage(mainV1.ref).inspect()).RootFS.Layers ?? [];
    const v2Layers = (await docker.getImage(mainV2.ref).inspect()).RootFS.Layers ?? [];
    expect(v1Layers).toEqual(mainV1.layers);
    expect(v2Layers).toEqual(mainV2.layers);
    expect(v2Layers[0]).toBe(base.layers[0]);
    expect(v2Layers.slice(0, 2)).toEqual(v1Layers.slice(0, 2));
    expect(v2Layers[2]).not.toBe(v1Layers[2]);

    // Pulling again by digest is a no-op that resolves to the same image.
    const again = await pullImage(docker, mainV1.digestRef);
    expect(again.status).toContain('Image is up to date');
    expect(again.imageId).toBe(mainV1.imageId);
  });

  describe('containers', () => {
    let container: StartedTestContainer | undefined;

    afterAll(async () => {
      await container?.stop({ timeout: 0 });
    });

    test('testcontainers runs a pulled image with network mode none', async () => {
      await pullImage(docker, workerV1.ref);
      container = await new GenericContainer(workerV1.ref)
        .withNetworkMode('none')
        .withCommand(['sh', '-c', 'echo ready; exec sleep 30'])
        .withWaitStrategy(Wait.forLogMessage('ready'))
        .withStartupTimeout(60_000)
        .start();

      const inspected = await docker.getContainer(container.getId()).inspect();
      expect(inspected.HostConfig.NetworkMode).toBe('none');
      expect(inspected.Image).toBe(workerV1.imageId);
      expect(inspected.State.Running).toBe(true);

      const marker = await container.exec(['cat', '/image-keeper/name']);
      expect(marker.exitCode).toBe(0);
      expect(marker.output.trim()).toBe(workerV1.marker);
      // Only the loopback interface exists inside.
      const interfaces = await container.exec(['ls', '/sys/class/net']);
      expect(interfaces.output.trim().split(/\s+/)).toEqual(['lo']);
    });
  });

  test('kill -9 of dockerd and a restart on the same data-root keep the pulled images', async () => {
    await pullImage(docker, mainV1.ref);
    await pullImage(docker, mainV2.ref);
    const before = (await docker.listImages()).map((image) => image.Id).sort();
    expect(before).toEqual(expect.arrayContaining([mainV1.imageId, mainV2.imageId]));

    const oldPid = await engine.kill9();
    expect(await engine.ping(1_000)).toBe(false);
    expect(engine.pid).toBeUndefined();

    await engine.restart();
    expect(engine.pid).toBeDefined();
    expect(engine.pid).not.toBe(oldPid);
    const restartedInfo = (await docker.info()) as { DockerRootDir: string; Driver: string };
    expect(restartedInfo.DockerRootDir).toBe(info.dataRoot);
    expect(restartedInfo.Driver).toBe(info.storageDriver);

    const after = (await docker.listImages()).map((image) => image.Id).sort();
    expect(after).toEqual(before);
    const v2 = await docker.getImage(mainV2.ref).inspect();
    expect(v2.RepoDigests).toContain(mainV2.digestRef);
    expect(v2.RootFS.Layers).toEqual(mainV2.layers);
  });
});
