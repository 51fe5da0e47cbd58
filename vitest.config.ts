import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['portcullis-source'] },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration suites start real servers and child processes; two cores run two files at a time.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
