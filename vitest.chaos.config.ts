// The long chaos suite (`npm run test:chaos`): crash chaos with SIGKILLed worker processes, soak. One file at a
// time, so that the files do not compete for the cores (their timings and lease margins depend on it).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.chaos.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/setup/global-postgres.ts'],
  },
});
