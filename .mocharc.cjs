// Mocha settings shared by every suite. Which files run is given on the command line (the
// `test:only` script runs them all; `pnpm exec mocha <file>` runs one). TypeScript specs run through tsx; workspace packages resolve to their built
// dist (the test command builds first).

module.exports = {
  'node-option': ['import=tsx', 'enable-source-maps'],
  reporter: './scripts/mocha-reporter.cjs',
  timeout: 30000,
  slow: 2000,
  exit: true,
};
