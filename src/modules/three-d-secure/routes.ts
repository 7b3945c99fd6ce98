import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { StrictObject } from '../../http/schemas.js';
import { toApiPayment } from '../payments/service.js';
import { escapeHtml, newNonce, pageHeaders } from '../elements/security-headers.js';

const TokenParam = StrictObject({ token: Type.String({ minLength: 10, maxLength: 2048 }) });

function page(title: string, body: string, nonce: string) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(title)}</title>
<style nonce="${nonce}">body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1a1f36}
.card{border:1px solid #e3e8ee;border-radius:8px;padding:1.5rem}button{font-size:1rem;padding:.6rem 1rem;margin-right:.5rem;border-radius:6px;border:1px solid #635bff;cursor:pointer}
#complete{background:#635bff;color:#fff}#fail{background:#fff;color:#635bff}</style></head>
<body><div class="card">${body}</div></body></html>`;
}

/** The simulated issuer's 3-D Secure challenge page, served by us in test mode only. */
export const threeDSecureRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { payments } = app.platform;

  app.get(
    '/3ds/:token',
    { schema: { hide: true, params: TokenParam }, config: { auth: 'none' } },
    async (request, reply) => {
      const { token } = request.params;
      const { state } = await payments.threeDSecureChallenge(token);
      const payment = toApiPayment(state);
      const amount = `${payment.amount} ${payment.currency.toUpperCase()} (minor units)`;
      const nonce = newNonce();
      // payforward.js shows this page in a modal frame on the shop's page; the simulated issuer exists in test mode
      // only, so local http shops may frame it too.
      pageHeaders(reply, { nonce, framing: { shops: true, testMode: true }, frames: false });
      return page(
        '3-D Secure authentication',
        `<h1>3-D Secure test page</h1><p>Payment <code>${escapeHtml(payment.id)}</code> of ${escapeHtml(amount)} needs authentication.</p>
<p id="status">Status: <strong>${escapeHtml(payment.status)}</strong></p>
<button id="complete">Complete authentication</button><button id="fail">Fail authentication</button>
<script src="/elements/three-d-secure.js"></script>`,
        nonce,
      );
    },
  );

  app.post(
    '/3ds/:token/complete',
    {
      schema: {
        hide: true,
        params: TokenParam,
        body: StrictObject({ outcome: Type.String({ enum: ['succeeded', 'failed'] }) }),
      },
      config: { auth: 'none' },
    },
    async (request) => {
      const { token } = request.params;
      const { outcome } = request.body;
      const { payment, returnUrl } = await payments.completeThreeDSecure(token, outcome === 'succeeded');
      return { id: payment.id, status: payment.status, return_url: returnUrl };
    },
  );
};
