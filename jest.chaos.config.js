/**
 * The chaos suite (`npm run test:chaos`): real processes from the built dist/ (run `npm run build` first), real
 * Postgres and Redis, the Twilio sandbox as the provider. One scenario per file, run in band: each kills,
 * wipes or restarts things under the others' feet otherwise. Set CHAOS_GLOBAL=1 (CI) to flush Redis and restart
 * Postgres for real; without it only the scenario's own keys and connections are hit.
 */
const base = require('./jest.config');

module.exports = {
  testEnvironment: base.testEnvironment,
  transform: base.transform,
  moduleNameMapper: base.moduleNameMapper,
  testMatch: ['<rootDir>/test/chaos/**/*.chaos.ts'],
  globalSetup: base.globalSetup,
  globalTeardown: base.globalTeardown,
  testTimeout: 240000,
  // scripts/chaos.mjs runs the scenarios that disrupt only themselves two at a time, the global ones alone.
  maxWorkers: 1,
};
