// Mocha's spec output, then the plain count line CI reads ("N passed, N failed"). A skipped test
// or an empty run counts as a failure: a suite that silently does not run must not look green.
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END, EVENT_TEST_PENDING } = Mocha.Runner.constants;

class FleetReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    const skipped = [];
    runner.on(EVENT_TEST_PENDING, (test) => skipped.push(test.fullTitle()));
    runner.once(EVENT_RUN_END, () => {
      const { passes = 0, failures = 0, tests = 0 } = runner.stats ?? {};
      const failed = failures + skipped.length + (tests === 0 ? 1 : 0);
      for (const title of skipped) console.log(`skipped (counted as failed): ${title}`);
      if (tests === 0) console.log('no tests ran (counted as failed)');
      console.log(`${passes} passed, ${failed} failed`);
      if (failed > failures) process.exitCode = 1;
    });
  }
}
module.exports = FleetReporter;
