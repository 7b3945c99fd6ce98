import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/**
 * `npm run dashboard:screenshots`: the tests' setup (fresh database, real app, Chromium) for the screenshot run
 * alone. The include list is replaced, not merged (mergeConfig would append it to the suite's).
 */
export default defineConfig({
  test: { ...base.test, include: ['scripts/dashboard/screenshots.run.ts'], testTimeout: 120_000 },
});
