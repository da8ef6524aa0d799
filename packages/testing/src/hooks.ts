import { afterEach, beforeEach } from 'mocha';
import type { TestVhost } from './rabbit.js';

/**
 * Gives each test of the enclosing `describe` a vhost of its own: `create()` before the test
 * (handed to `use`), and after it `cleanup()` (the suite's brokers and connections, which would
 * otherwise hold the vhost open) followed by dropping the vhost. Hooks a `describe` registers
 * after this call run after the vhost exists.
 */
export function vhostPerTest(create: () => Promise<TestVhost>, cleanup: () => Promise<void>, use: (vhost: TestVhost) => void): void {
  let vhost: TestVhost | undefined;
  beforeEach(async () => {
    vhost = await create();
    use(vhost);
  });
  afterEach(async () => {
    await cleanup();
    await vhost?.drop();
    vhost = undefined;
  });
}
