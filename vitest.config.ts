import { defineConfig } from 'vitest/config';

// Three projects: fast unit tests, simulation (fast-check over the fakes), and engine tests against a
// private dockerd and registry that the engine project's globalSetup starts and stops.
export default defineConfig({
  test: {
    retry: 0,
    teardownTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'core/**/*.test.ts',
            'adapters/**/*.test.ts',
            'test/unit/**/*.test.ts',
            'cli/**/*.test.ts',
            'test/contract/**/*.test.ts',
          ],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'sim',
          include: ['sim/**/*.test.ts', 'test/sim/**/*.test.ts'],
          testTimeout: 180_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'engine',
          include: ['test/engine/**/*.test.ts'],
          globalSetup: ['test/engine/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
