import { defineConfig } from 'vitest/config';

/** Tests of the compiled build (`npm run build` first): `npm run test:dist`. */
export default defineConfig({
  test: {
    include: ['test/dist/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 60_000,
  },
});
