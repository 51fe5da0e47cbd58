import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources (the `portcullis-source` export condition),
// so in-process tests never run stale builds; spawned CLIs still run `dist/`.
const conditions = ['portcullis-source', ...defaultServerConditions];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
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
