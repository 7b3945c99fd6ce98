import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { limitCardTokenization } from './rate-limit.js';
import { PaymentMethodInput, PaymentMethodListQuery, PaymentMethodRetrieveQuery, VerifyBody } from './schemas.js';

const tags = ['Payment methods'];

export const paymentMethodRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { paymentMethods, expander } = app.platform;

  app.post(
    '/v1/payment_methods',
    {
      config: { auth: 'tenant', scope: 'payment_methods:write' },
      preValidation: limitCardTokenization(),
      schema: {
        tags,
        summary: 'Tokenize a card',
        description:
          'Encrypts the card number in the vault and returns a `pm_…` token. The CVC is checked and discarded.',
        body: {
          ...PaymentMethodInput,
          examples: [{ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' } }],
        },
        response: { 200: ref('PaymentMethod'), ...errors },
      },
    },
    async (request) => paymentMethods.create(tenantScope(request), request.body),
  );

  app.get(
    '/v1/payment_methods',
    {
      config: { auth: 'tenant', scope: 'payment_methods:read' },
      schema: {
        tags,
        summary: 'List payment methods',
        description: '`expand[]=data.customer` returns the customer a card is saved for.',
        querystring: PaymentMethodListQuery,
        response: { 200: listOf('PaymentMethod', '/v1/payment_methods'), ...errors },
      },
    },
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
