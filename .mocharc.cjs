// Mocha settings shared by every suite. Which files run is given on the command line (the
// `test:only` script runs them all; `pnpm exec mocha <file>` runs one). TypeScript specs run through tsx; workspace packages resolve to their built
// dist (the test command builds first).

// The services that the suites start as processes use the KMS emulator and the local chains, which
// they accept in development mode only (service-kit's loadConfig). Suites that load a config from an
// explicit environment say FLEET_DEV_MODE themselves.
process.env.FLEET_DEV_MODE ??= 'true';

module.exports = {
  'node-option': ['import=tsx', 'enable-source-maps'],
  reporter: './scripts/mocha-reporter.cjs',
  timeout: 30000,
  slow: 2000,
  exit: true,
};
