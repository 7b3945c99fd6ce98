import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // Files share their worker's modules instead of importing the app afresh each (about 3 s of CPU per file here):
    // 12 module test files took 93.8 s of CPU and 261 s isolated, 43.7 s and 96 s not. Nothing in the tests mocks a
    // module or changes process-wide state, and every file closes what it starts.
    isolate: false,
    // Suites never skip silently: a missing service fails the run in CI (see test/services.ts).
    passWithNoTests: false,
  },
});
