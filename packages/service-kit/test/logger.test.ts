import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'mocha';
import { createLogger, runWithContext } from '@wallet-fleet/service-kit';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, destination, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('should write JSON lines carrying the service and the correlationId of the work context', () => {
    const out = capture();
    const logger = createLogger({ service: 'wallet', destination: out.destination });
    runWithContext({ correlationId: 'corr-42', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, () => {
      logger.info({ walletId: 'w1' }, 'wallet created');
    });
    logger.info('outside any work');
    const [inside, outside] = out.records();
    assert.equal(inside!.service, 'wallet');
    assert.equal(inside!.level, 'info');
    assert.equal(inside!.msg, 'wallet created');
    assert.equal(inside!.correlationId, 'corr-42');
    assert.equal(inside!.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(outside!.correlationId, undefined);
  });

  it('should never write secrets given as fields', () => {
    const out = capture();
    const logger = createLogger({ service: 'wallet', destination: out.destination });
    logger.info(
      {
        password: 'pw-hunter2',
        user: { privateKey: 'pk-deadbeef', token: 'tok-abc' },
        config: { DATABASE_URL: 'postgres://app:db-s3cret@db/x', HTTP_PORT: 8080 },
        req: { headers: { authorization: 'Bearer bearer-xyz', cookie: 'sid=cookie-123' } },
        databaseUrl: 'postgres://app:other-s3cret@db/x',
      },
      'config loaded',
    );
    const text = out.lines.join('\n');
    for (const secret of ['pw-hunter2', 'pk-deadbeef', 'tok-abc', 'db-s3cret', 'bearer-xyz', 'cookie-123', 'other-s3cret']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    const [rec] = out.records();
    assert.equal((rec!.config as Record<string, unknown>).HTTP_PORT, 8080);
    assert.equal(rec!.password, '[redacted]');
  });

  it('should mask passwords of URLs inside error messages and stacks', () => {
    const out = capture();
    const logger = createLogger({ service: 'wallet', destination: out.destination });
    const err = new Error('connect ECONNREFUSED amqp://guest:amqp-pw-777@10.0.0.1:5672/', {
      cause: new Error('upstream redis://:redis-pw-888@cache:6379 down'),
    });
    logger.error({ err }, 'broker down');
    logger.error(err);
    logger.info('connecting to postgres://app:msg-pw-999@db:5432/x');
    const text = out.lines.join('\n');
    assert.ok(!text.includes('amqp-pw-777'), text);
    assert.ok(!text.includes('redis-pw-888'), text);
    assert.ok(!text.includes('msg-pw-999'), text);
    assert.match(text, /amqp:\/\/guest:\*\*\*@10\.0\.0\.1/);
  });
});
