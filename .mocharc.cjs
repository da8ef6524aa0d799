// One mocha run for every suite: package and service suites beside their code, cross-service
// suites under test/. TypeScript specs run through tsx; workspace packages resolve to their built
// dist (the test command builds first).
module.exports = {
  spec: [
    'packages/*/test/**/*.test.ts',
    'services/*/test/**/*.test.ts',
    'test/e2e/**/*.test.ts',
  ],
  'node-option': ['import=tsx', 'enable-source-maps'],
  reporter: './scripts/mocha-reporter.cjs',
  timeout: 30000,
  slow: 2000,
  exit: true,
};
