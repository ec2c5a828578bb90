/** Unit and integration tests: *.spec.ts beside the code, end-to-end tests under test/. */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
  },
];
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: { '^@rxnotify/common(|/.*)$': '<rootDir>/libs/common/src$1' },
  testMatch: ['<rootDir>/{apps,libs,tools,test}/**/*.{spec,e2e}.ts'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 30000,
  maxWorkers: 2,
};
