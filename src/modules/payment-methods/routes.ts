import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listRoute, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { limitCardTokenization } from './rate-limit.js';
import {
  PaymentMethodInput,
  PaymentMethodListQuery,
  PaymentMethodRetrieveQuery,
  VerifyBody,
  type PaymentMethod,
} from './schemas.js';
import { ApiError } from '../../http/errors.js';
import { byPublishableKey } from '../../http/auth.js';

/**
 * What a publishable key gets back when it tokenizes: the `pm_…` and what a checkout form shows. Not the BIN,
 * fingerprint or funding, which would let a public key probe whether a number is a card the tenant has seen.
 */
function publishableView(method: PaymentMethod) {
  const { brand, last4, exp_month, exp_year } = method.card;
  return {
    id: method.id,
    object: method.object,
    type: method.type,
    card: { brand, last4, exp_month, exp_year },
    created: method.created,
    livemode: method.livemode,
  };
}

const tags = ['Payment methods'];

export const paymentMethodRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { paymentMethods, expander } = app.platform;

  app.post(
    '/v1/payment_methods',
    {
      config: { auth: 'tenant', scope: 'payment_methods:write', publishable: 'always' },
      preValidation: limitCardTokenization(),
      schema: {
        tags,
        summary: 'Tokenize a card',
        description:
          'Encrypts the card number in the vault and returns a `pm_…` token. The CVC is checked and discarded. ' +
          "A publishable key may call this (it is what payforward.js's card iframe does), without `customer`, and " +
          'gets back `id`, `object`, `type`, `card.brand`, `card.last4`, `card.exp_month`, `card.exp_year`, `created` ' +
          'and `livemode` only.',
        security: [{ secretKey: [] }, { publishableKey: [] }],
        body: {
          ...PaymentMethodInput,
          examples: [{ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' } }],
        },
        response: { 200: ref('PaymentMethod'), ...errors },
      },
    },
    async (request, reply) => {
      const publishable = byPublishableKey(request.auth);
      if (publishable && request.body.customer !== undefined)
        throw new ApiError(
          'permission_error',
          'publishable_key_not_allowed',
          'A publishable key cannot attach a card to a customer; attach it from your server with a secret key.',
          'customer',
          403,
        );
      const method = await paymentMethods.create(tenantScope(request), request.body);
      if (!publishable) return method;
      // The route's response schema describes the full payment method; this smaller one is written as it is.
      reply.serializer(JSON.stringify);
      return publishableView(method);
    },
  );

  app.get(
    '/v1/payment_methods',
    listRoute(
      { auth: 'tenant', scope: 'payment_methods:read' },
      {
        tags,
        summary: 'List payment methods',
        description: '`expand[]=data.customer` returns the customer a card is saved for.',
      },
      PaymentMethodListQuery,
      'PaymentMethod',
      '/v1/payment_methods',
    ),
    async (request) =>
      expander.list(tenantScope(request), 'payment_method', request.query['expand[]'], async () => ({
        object: 'list',
        url: '/v1/payment_methods',
        ...(await paymentMethods.list(tenantScope(request), request.query)),
      })),
  );

  app.get(
    '/v1/payment_methods/:id',
    {
      config: { auth: 'tenant', scope: 'payment_methods:read' },
      schema: {
        tags,
        summary: 'Retrieve a payment method',
        description: '`expand[]=customer` returns the customer the card is saved for.',
        params: IdParam,
        querystring: PaymentMethodRetrieveQuery,
        response: { 200: ref('PaymentMethod'), ...errors },
      },
    },
    async (request) =>
      expander.one(tenantScope(request), 'payment_method', request.query['expand[]'], () =>
        paymentMethods.retrieve(tenantScope(request), request.params.id),
      ),
  );

  app.post(
    '/v1/payment_methods/:id/verify',
    {
      config: { auth: 'tenant', scope: 'payment_methods:write' },
      schema: {
        tags,
        summary: 'Verify a card',
        description:
          'Luhn, expiry and CVC checks plus a $0 authorization, answered at once with the reasons for any failure.',
        params: IdParam,
        body: VerifyBody,
        response: { 200: ref('CardVerification'), ...errors },
      },
    },
    async (request) => paymentMethods.verify(tenantScope(request), request.params.id, request.body ?? null),
  );
};
