import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam, StrictObject } from '../../http/schemas.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { escapeHtml, newNonce, PAGE_STYLE, pageHeaders } from '../elements/security-headers.js';
import { formatAmount } from './format.js';
import { CheckoutSessionListQuery, CreateCheckoutSessionBody, ExpireCheckoutSessionBody } from './schemas.js';

const tags = ['Checkout'];
const TokenParam = StrictObject({ token: Type.String({ minLength: 10, maxLength: 2048 }) });

const CHECKOUT_STYLE = `${PAGE_STYLE}
body{background:#f6f9fc;padding:2rem 1rem}main{max-width:28rem;margin:0 auto;background:#fff;border:1px solid #e3e8ee;border-radius:10px;padding:1.5rem}
h1{font-size:1.1rem;margin:0 0 .25rem}.amount{font-size:2rem;font-weight:600;margin:0 0 1.25rem}
#card{margin-bottom:1rem}button{width:100%;font:inherit;font-weight:600;padding:.75rem;border:0;border-radius:6px;background:#635bff;color:#fff;cursor:pointer}
button:disabled{opacity:.6;cursor:default}#message{min-height:1.25rem;color:#df1b41;font-size:14px}a{color:#635bff;font-size:14px}`;

export const checkoutRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { checkout } = app.platform;

  app.post(
    '/v1/checkout/sessions',
    {
      config: { auth: 'tenant', scope: 'payments:write' },
      schema: {
        tags,
        summary: 'Create a checkout session',
        description:
          'Creates a payment and a hosted page (`url`) where the buyer pays it with a card (3-D Secure included), then is ' +
          'sent to `success_url`. Send the buyer to `url`; listen for `checkout.session.completed` to fulfil. ' +
          'The session expires after `expires_in` seconds (default 24 hours), canceling its payment.',
        body: {
          ...CreateCheckoutSessionBody,
          examples: [
            {
              amount: 4900,
              currency: 'eur',
              success_url: 'https://shop.example.com/thanks',
              cancel_url: 'https://shop.example.com/cart',
              metadata: { order_id: '1042' },
            },
          ],
        },
        response: { 200: ref('CheckoutSession'), ...errors },
      },
    },
    async (request) => checkout.create(tenantScope(request), request.body, request.id),
  );

  app.get(
    '/v1/checkout/sessions',
    listRoute(
      { auth: 'tenant', scope: 'payments:read' },
      { tags, summary: 'List checkout sessions' },
      CheckoutSessionListQuery,
      'CheckoutSession',
      '/v1/checkout/sessions',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/checkout/sessions',
      ...(await checkout.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/checkout/sessions/:id',
    retrieveRoute(
      { auth: 'tenant', scope: 'payments:read' },
      { tags, summary: 'Retrieve a checkout session' },
      'CheckoutSession',
    ),
    async (request) => checkout.retrieve(tenantScope(request), request.params.id, request.id),
  );

  app.post(
    '/v1/checkout/sessions/:id/expire',
    {
      config: { auth: 'tenant', scope: 'payments:write' },
      schema: {
        tags,
        summary: 'Expire a checkout session',
        description: 'Ends an open session now: its page stops taking payment and its payment is canceled.',
        params: IdParam,
        body: ExpireCheckoutSessionBody,
        response: { 200: ref('CheckoutSession'), ...errors },
      },
    },
    async (request) => checkout.expire(tenantScope(request), request.params.id, request.id),
  );

  // The hosted page. Nobody may frame it (clickjacking a payment page), no inline script runs on it, and its data
  // reaches hosted-checkout.js through data- attributes. The card fields are payforward.js's frame, as on a shop's
  // page.
  app.get(
    '/checkout/:token',
    { schema: { hide: true, params: TokenParam }, config: { auth: 'none' } },
    async (request, reply) => {
      const nonce = newNonce();
      pageHeaders(reply, { nonce, framing: { shops: false }, frames: true });
      const { session, publishableKey, clientSecret } = await checkout.page(request.params.token);
      const amount = formatAmount(session.amount, session.currency);
      return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Pay ${escapeHtml(amount)}</title><style nonce="${nonce}">${CHECKOUT_STYLE}</style></head>
<body><main id="checkout" data-key="${escapeHtml(publishableKey)}" data-client-secret="${escapeHtml(clientSecret)}"
 data-complete-url="/checkout/${escapeHtml(request.params.token)}/complete">
<h1>Pay</h1><p class="amount" id="amount">${escapeHtml(amount)}</p>
<div id="card"></div><p id="message" role="alert"></p>
<button id="pay" type="button">Pay ${escapeHtml(amount)}</button>
<p><a href="${escapeHtml(session.cancel_url)}" rel="noreferrer">Cancel and return to the shop</a></p>
</main><script src="/js/payforward.js"></script><script src="/elements/hosted-checkout.js"></script></body></html>`;
    },
  );

  app.post(
    '/checkout/:token/complete',
    {
      schema: { hide: true, params: TokenParam, body: Type.Union([StrictObject({}), Type.Null()]) },
      config: { auth: 'none' },
    },
    async (request) => checkout.completeFromPage(request.params.token),
  );
};
