// No Aptos node installs offline: a real node:http server answers as the node's REST API does for
// the balance route, so the adapter's HTTP handling is exercised for real.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isFleetError } from '@wallet-fleet/contracts';
import { createAptosAdapter } from '../src/index.js';

const FUNDED = `0x${'ab'.repeat(32)}`;
const UNKNOWN = `0x${'cd'.repeat(32)}`;

describe('Aptos adapter (node REST API)', () => {
  let server: Server;
  let url: string;
  let answer: (req: IncomingMessage, res: ServerResponse) => void;
  const paths: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      paths.push(req.url ?? '');
      answer(req, res);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });
  beforeEach(() => {
    paths.length = 0;
    // The node's answers: a known account's APT balance as a bare JSON number, 404 for an unknown one.
    answer = (req, res) => {
      if (req.url === `/v1/accounts/${FUNDED}/balance/0x1::aptos_coin::AptosCoin`) res.writeHead(200, { 'content-type': 'application/json' }).end('123456789');
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Account not found","error_code":"account_not_found"}');
    };
  });

  it('should read the APT balance of an account from /accounts/{address}/balance/0x1::aptos_coin::AptosCoin', async () => {
    assert.equal(await createAptosAdapter({ nodeUrl: url }).getBalance(FUNDED), 123456789n);
    assert.deepEqual(paths, [`/v1/accounts/${FUNDED}/balance/0x1::aptos_coin::AptosCoin`]);
  });

  it('should accept the node URL with a trailing slash', async () => {
    assert.equal(await createAptosAdapter({ nodeUrl: `${url}/` }).getBalance(FUNDED), 123456789n);
  });

  it('should give 0 for an account the node does not know (404)', async () => {
    assert.equal(await createAptosAdapter({ nodeUrl: url }).getBalance(UNKNOWN), 0n);
  });

  it('should keep a balance above 2^53 exact', async () => {
    answer = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('18446744073709551615');
    assert.equal(await createAptosAdapter({ nodeUrl: url }).getBalance(FUNDED), 18446744073709551615n);
  });

  it('should answer UNAVAILABLE when the node answers an error or something that is not a balance', async () => {
    answer = (_req, res) => res.writeHead(503).end('busy');
    await assert.rejects(createAptosAdapter({ nodeUrl: url }).getBalance(FUNDED), (e) => isFleetError(e, 'UNAVAILABLE') && /503/.test(e.message));
    answer = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"oops":1}');
    await assert.rejects(createAptosAdapter({ nodeUrl: url }).getBalance(FUNDED), (e) => isFleetError(e, 'UNAVAILABLE'));
  });

  it('should answer UNAVAILABLE when the node does not answer in time', async () => {
    answer = () => {}; // never answers
    const started = Date.now();
    await assert.rejects(createAptosAdapter({ nodeUrl: url, requestTimeoutMs: 200 }).getBalance(FUNDED), (e) => isFleetError(e, 'UNAVAILABLE'));
    assert.ok(Date.now() - started < 5000, 'the deadline applies');
  });

  it('should answer UNAVAILABLE when the node is unreachable', async () => {
    await assert.rejects(createAptosAdapter({ nodeUrl: 'http://127.0.0.1:1/v1' }).getBalance(FUNDED), (e) => isFleetError(e, 'UNAVAILABLE'));
  });

  it('should refuse something that is not an Aptos address with VALIDATION_FAILED, asking the node nothing', async () => {
    await assert.rejects(createAptosAdapter({ nodeUrl: url }).getBalance('../../healthy'), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    assert.deepEqual(paths, []);
  });
});
