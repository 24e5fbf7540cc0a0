/** The engine port contract against the real Docker adapter on the private dockerd and registry. */
import { afterAll, beforeAll, inject } from 'vitest';
import { DockerEngine } from '../../adapters/docker/docker-engine.js';
import { engineContract } from '../contract/engine-contract.js';
import { PrivateEngine } from './support/private-engine.js';
import { assertPrivateEngineAnswers } from './support/private-socket.js';
import { tagInRegistry } from './support/registry-tag.js';
import { resetEngine } from './support/reset-engine.js';

const info = inject('engine');
const docker = PrivateEngine.attach(info.engine).client(60_000);
const { mainV1, mainV2, workerV1 } = info.images;
const OTHER_TAG = 'v1-alias';

beforeAll(async () => {
  await assertPrivateEngineAnswers(info.socketPath, info.dataRoot);
  await tagInRegistry(info.registry.url, mainV1.path, mainV1.digest, OTHER_TAG);
});

afterAll(async () => {
  await resetEngine(docker);
});

engineContract('docker engine', async () => {
  await resetEngine(docker);
  return {
    engine: new DockerEngine({ socketPath: info.socketPath, timeoutMs: 60_000, stopTimeoutSeconds: 1 }),
    refs: {
      main1: mainV1.digestRef,
      main2: mainV2.digestRef,
      worker1: workerV1.digestRef,
      main1Tag: mainV1.ref,
      main1OtherTag: `${mainV1.repository}:${OTHER_TAG}`,
    },
    controls: {
      addForeignContainer: async (imageId) => {
        const container = await docker.createContainer({
          Image: imageId,
          HostConfig: { NetworkMode: 'none' },
        });
        return container.id;
      },
      stopContainer: async (id) => {
        await docker
          .getContainer(id)
          .stop({ t: 0 })
          .catch((error: { statusCode?: number }) => {
            if (error.statusCode !== 304) throw error;
          });
      },
    },
    cleanup: async () => undefined,
  };
});
