import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { SenderSecret } from './config.js';

export interface SignatureVerifier {
  /**
   * Whether `rawBody` carries a valid Standard Webhooks signature under any of the secrets, with a
   * timestamp within 5 minutes of now, and which sender's secret it was. Returns the reason on
   * failure (never secret material).
   */
  verify(rawBody: Buffer, headers: Record<string, string | string[] | undefined>): { ok: true; sender: string } | { ok: false; reason: string };
}

/**
 * Standard Webhooks verification through the reference library (`standardwebhooks`): HMAC-SHA256
 * over `id.timestamp.body`, constant-time comparison of each `v1,` signature in the header, 5-minute
 * tolerance both ways. Every configured secret is tried, so a sender may sign with the old or the
 * new secret while one rotates. Throws Error at construction on a malformed secret.
 */
export function createSignatureVerifier(secrets: readonly SenderSecret[]): SignatureVerifier {
  const hooks = secrets.map((s) => ({ sender: s.sender, hook: new Webhook(s.secret) }));
  return {
    verify(rawBody, headers) {
      const h: Record<string, string> = {};
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        const v = headers[name];
        if (typeof v !== 'string' || v.length === 0) return { ok: false, reason: `missing ${name}` };
        h[name] = v;
      }
      let reason = 'no matching signature';
      for (const { sender, hook } of hooks) {
        try {
          // jsonParse off: the body is parsed (strictly) after the signature, by us.
          hook.verify(rawBody, h, { jsonParse: false });
          return { ok: true, sender };
        } catch (e) {
          if (!(e instanceof WebhookVerificationError)) throw e;
          // Timestamp problems are the same for every secret: no point trying the others.
          if (/timestamp|Invalid Signature Headers/i.test(e.message)) return { ok: false, reason: e.message };
          reason = e.message;
        }
      }
      return { ok: false, reason };
    },
  };
}
