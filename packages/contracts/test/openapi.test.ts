import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DepositWebhookBody } from '@wallet-fleet/contracts';
import { buildOpenApi } from '../src/openapi.js';

type Doc = {
  openapi: string;
  paths: Record<string, { post: { parameters: Array<{ name: string; in: string; required: boolean }>; responses: Record<string, unknown> } }>;
  components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[]; additionalProperties?: unknown }> };
};

describe('OpenAPI document of the webhook intake (docs/openapi.json)', () => {
  it('should keep docs/openapi.json in step with the schemas (run `pnpm asyncapi` after a change)', () => {
    const file = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(JSON.stringify(buildOpenApi(pkg.version))));
  });

  it('should describe POST /webhooks/deposits with the Standard Webhooks headers and every answer the intake gives', () => {
    const doc = buildOpenApi('0') as Doc;
    assert.equal(doc.openapi, '3.1.0');
    const post = doc.paths['/webhooks/deposits']!.post;
    assert.deepEqual(
      post.parameters.map((p) => [p.name, p.in, p.required]),
      [
        ['webhook-id', 'header', true],
        ['webhook-timestamp', 'header', true],
        ['webhook-signature', 'header', true],
      ],
    );
    assert.deepEqual(Object.keys(post.responses).sort(), ['200', '400', '401', '409', '413', '429', '503']);
  });

  it('should take the body schema from the zod contract: every field, the required ones, no unknown field', () => {
    const body = (buildOpenApi('0') as Doc).components.schemas.DepositWebhookBody!;
    assert.deepEqual(Object.keys(body.properties ?? {}).sort(), Object.keys(DepositWebhookBody.shape).sort());
    // eventIndex has a default: a sender may leave it out.
    assert.deepEqual([...(body.required ?? [])].sort(), ['amount', 'chain', 'toAddress', 'token', 'txHash']);
    assert.equal(body.additionalProperties, false);
  });
});
