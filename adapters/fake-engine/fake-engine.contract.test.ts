import { engineContract, type EngineContractRefs } from '../../test/contract/engine-contract.js';
import { FakeEngine, fakeId } from './fake-engine.js';
import { FakeRegistry, type RegistryManifest } from './fake-registry.js';

const REPO = 'registry.local/app/main';
const base = { digest: fakeId('layer:base'), size: 1_000 };
const lib = { digest: fakeId('layer:lib'), size: 1_048_576 };

// main1 and main2 share base + lib; worker shares only base. main1 is served under two tags.
const manifests: RegistryManifest[] = [
  {
    repository: REPO,
    digest: fakeId('manifest:main1'),
    imageId: fakeId('image:main1'),
    layers: [base, lib, { digest: fakeId('layer:app1'), size: 300 }],
    tags: ['v1', 'v1-alias'],
  },
  {
    repository: REPO,
    digest: fakeId('manifest:main2'),
    imageId: fakeId('image:main2'),
    layers: [base, lib, { digest: fakeId('layer:app2'), size: 310 }],
    tags: ['v2'],
  },
  {
    repository: 'registry.local/app/worker',
    digest: fakeId('manifest:worker1'),
    imageId: fakeId('image:worker1'),
    layers: [base, { digest: fakeId('layer:worker'), size: 65_536 }],
    tags: ['v1'],
  },
];

const refs: EngineContractRefs = {
  main1: `${REPO}@${fakeId('manifest:main1')}`,
  main2: `${REPO}@${fakeId('manifest:main2')}`,
  worker1: `registry.local/app/worker@${fakeId('manifest:worker1')}`,
  main1Tag: `${REPO}:v1`,
  main1OtherTag: `${REPO}:v1-alias`,
};

let foreign = 0;

// supportsDeltas false, like a stock Docker engine, so the DELTAS_UNSUPPORTED case runs here too.
engineContract('fake engine', async () => {
  const engine = new FakeEngine(new FakeRegistry(manifests), undefined, { supportsDeltas: false });
  return {
    engine,
    refs,
    controls: {
      addForeignContainer: async (imageId) => {
        const id = `foreign-${++foreign}`;
        engine.addContainer({ id, imageId, running: true });
        return id;
      },
      stopContainer: async (id) => engine.setContainerState(id, { running: false }),
    },
    cleanup: async () => undefined,
  };
});
