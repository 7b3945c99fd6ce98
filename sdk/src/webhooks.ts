import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { PayForwardSignatureError } from './errors.js';
import type { components } from './schema.js';

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

const header = (headers: WebhookHeaders, name: string) => {
  const value = headers instanceof Headers ? headers.get(name) : (headers[name] ?? headers[name.toLowerCase()]);
  return Array.isArray(value) ? value[0] : (value ?? undefined);
};

/**
 * Verifies a webhook delivery per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
 * HMAC-SHA256 with the endpoint's `whsec_…` secret, at most five minutes old) and returns its event. Pass the raw
 * body exactly as received: a re-serialized JSON body no longer matches its signature. During a secret rotation,
 * pass both secrets: a delivery signed with either verifies.
 */
export function verifyWebhook(
  payload: string | Uint8Array,
  headers: WebhookHeaders,
  secrets: string | string[],
): components['schemas']['Event'] {
  const body = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  const required = {
    'webhook-id': header(headers, 'webhook-id'),
    'webhook-timestamp': header(headers, 'webhook-timestamp'),
    'webhook-signature': header(headers, 'webhook-signature'),
  };
  const missing = Object.entries(required).find(([, value]) => !value);
  if (missing) throw new PayForwardSignatureError(`The ${missing[0]} header is missing.`);
  let failure: unknown;
  for (const secret of Array.isArray(secrets) ? secrets : [secrets]) {
    try {
      return new Webhook(secret).verify(body, required as Record<string, string>) as components['schemas']['Event'];
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      failure = error;
    }
  }
  throw new PayForwardSignatureError(`The webhook does not verify: ${(failure as Error).message}`, failure);
}
