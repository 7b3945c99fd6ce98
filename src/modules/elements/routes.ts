import { readFileSync } from 'node:fs';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { StrictObject } from '../../http/schemas.js';
import { escapeHtml, newNonce, PAGE_STYLE, pageHeaders } from './security-headers.js';

/**
 * The browser files of payforward.js, read once at start. They are plain JavaScript with no build step; `npm run
 * build` copies the folder next to the bundle (dist/static), which is where this resolves in production.
 */
const asset = (name: string) => readFileSync(new URL(`./static/${name}`, import.meta.url), 'utf8');

const CardQuery = StrictObject({
  key: Type.String({ maxLength: 200 }),
  origin: Type.String({ maxLength: 300 }),
});
const AuthenticatedQuery = StrictObject({
  origin: Type.String({ maxLength: 300 }),
  test: Type.Optional(Type.String({ enum: ['1'] })),
});

export const elementsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const scripts = {
    'payforward.js': asset('payforward.js'),
    'card.js': asset('card.js'),
    'authenticated.js': asset('authenticated.js'),
    'hosted-checkout.js': asset('hosted-checkout.js'),
    'three-d-secure.js': asset('three-d-secure.js'),
  };

  const script = (name: keyof typeof scripts, crossOrigin: boolean) =>
    async function serveScript(_request: unknown, reply: FastifyReply) {
      reply
        .type('text/javascript; charset=utf-8')
        .header('x-content-type-options', 'nosniff')
        // Shop pages load payforward.js from our origin; the frames' scripts are for our own pages only.
        .header('cross-origin-resource-policy', crossOrigin ? 'cross-origin' : 'same-origin')
        .header('cache-control', 'public, max-age=300');
      return scripts[name];
    };

  app.get('/js/payforward.js', { schema: { hide: true }, config: { auth: 'none' } }, script('payforward.js', true));
  app.get('/elements/card.js', { schema: { hide: true }, config: { auth: 'none' } }, script('card.js', false));
  app.get(
    '/elements/authenticated.js',
    { schema: { hide: true }, config: { auth: 'none' } },
    script('authenticated.js', false),
  );

  app.get(
    '/elements/hosted-checkout.js',
    { schema: { hide: true }, config: { auth: 'none' } },
    script('hosted-checkout.js', false),
  );

  app.get(
    '/elements/three-d-secure.js',
    { schema: { hide: true }, config: { auth: 'none' } },
    script('three-d-secure.js', false),
  );

  // The card fields. The key and the parent page's origin arrive in the URL (both public); card.js checks the
  // origin against the browser's record of who framed it, and the CSP below decides who may frame it at all.
  app.get(
    '/elements/card',
    { schema: { hide: true, querystring: CardQuery }, config: { auth: 'none' } },
    async (request, reply) => {
      const nonce = newNonce();
      pageHeaders(reply, {
        nonce,
        framing: { shops: true, testMode: request.query.key.startsWith('pk_test_') },
        frames: false,
      });
      return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Card details</title><style nonce="${nonce}">${PAGE_STYLE}</style></head>
<body><div class="row">
<input id="number" name="cardnumber" autocomplete="cc-number" inputmode="numeric" placeholder="Card number" aria-label="Card number" maxlength="23" spellcheck="false">
<input id="expiry" name="exp-date" autocomplete="cc-exp" inputmode="numeric" placeholder="MM / YY" aria-label="Expiry date (MM / YY)" maxlength="7">
<input id="cvc" name="cvc" autocomplete="cc-csc" inputmode="numeric" placeholder="CVC" aria-label="Security code" maxlength="4">
</div><p id="status" role="alert"></p><script src="/elements/card.js"></script></body></html>`;
    },
  );

  // Where 3-D Secure sends the buyer back to, inside payforward.js's modal frame.
  app.get(
    '/elements/authenticated',
    { schema: { hide: true, querystring: AuthenticatedQuery }, config: { auth: 'none' } },
    async (request, reply) => {
      const nonce = newNonce();
      pageHeaders(reply, { nonce, framing: { shops: true, testMode: request.query.test === '1' }, frames: false });
      return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authentication complete</title>
<style nonce="${nonce}">${PAGE_STYLE}body{padding:2rem;text-align:center}</style></head>
<body><p>${escapeHtml('Authentication complete. Returning to the shop…')}</p>
<script src="/elements/authenticated.js"></script></body></html>`;
    },
  );
};
