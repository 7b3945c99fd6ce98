import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../http/errors.js';
import { byPublishableKey } from '../../http/auth.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { limitCardTokenization, paymentBodyTokenizes } from '../payment-methods/rate-limit.js';
import {
  CancelPaymentBody,
  CapturePaymentBody,
  ConfirmPaymentBody,
  CreatePaymentBody,
  type Payment,
  PaymentListQuery,
  PaymentRetrieveQuery,
  UpdatePaymentBody,
} from './schemas.js';
import { paymentClientView, PUBLISHABLE_PAYMENT_FIELDS } from './client-view.js';
import { preSerializationStep } from '../../http/sync-hooks.js';
import { inRequestedVersion } from '../versions/versions.js';
import type { KeyAnswer } from './service.js';

const tags = ['Payments'];
const EXPAND_DOC =
  'Expandable with `expand[]` (on the list, `data.`-prefixed): `payment_method`, `customer`, `balance_transaction`, ' +
  '`latest_attempt` and `refunds` (a list of the last 10), and nested up to 4 levels, e.g. `expand[]=customer.default_payment_method` ' +
  'or `expand[]=refunds.data.balance_transaction`.';
const createExample = {
  amount: 2000,
  currency: 'usd',
  payment_method: { type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' } },
  confirm: true,
  description: 'Order #1234',
};

/**
 * A publishable key's confirm comes from the buyer's own browser, so the buyer's IP address is the request's: the
 * page cannot claim another to the fraud checks. (A server confirming with its secret key passes the buyer's.) Nor
 * may a card given inline be saved to a customer: attaching is the shop server's decision, as on tokenizing.
 */
function asBrowserConfirm(request: FastifyRequest, body: ConfirmPaymentBody): ConfirmPaymentBody {
  if (!byPublishableKey(request.auth)) return body;
  const method = body?.payment_method;
  if (typeof method === 'object' && method.customer !== undefined)
    throw new ApiError(
      'permission_error',
      'publishable_key_not_allowed',
      'A publishable key cannot attach a card to a customer; attach it from your server with a secret key.',
      'payment_method[customer]',
      403,
    );
  const ip = request.ip.startsWith('::ffff:') ? request.ip.slice('::ffff:'.length) : request.ip;
  return { ...body, fraud_details: { ...body?.fraud_details, ip_address: ip } };
}

const publishableNote =
  ' With a publishable key (pk_…) and the `client_secret` this answers with ' +
  PUBLISHABLE_PAYMENT_FIELDS.map((field) => `\`${field}\``).join(', ') +
  ' only.';

export const paymentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { payments, expander, clientSecrets } = app.platform;
  const clientView = paymentClientView(clientSecrets);
  app.addHook('preSerialization', preSerializationStep(clientView));

  /**
   * For a request holding its key (an answer stored unsealed): the key, and the answer as the preSerialization hooks
   * (the API version's, then the client view) and the route's serializer would write it after the handler, so that
   * the payment's final write can store it on the key. Not for a publishable key: its client view changes the reply's
   * serializer, which would then also write an error answered instead.
   */
  const keyAnswer = (request: FastifyRequest, reply: FastifyReply): KeyAnswer | undefined => {
    const held = request.idempotency;
    const auth = request.auth;
    if (!held || held.sealResponse || (auth?.kind === 'tenant' && auth.via === 'publishable_key')) return undefined;
    const text = (payment: Payment) =>
      String(reply.serialize(clientView(request, reply, inRequestedVersion(payment, request.apiVersion))));
    return { held, text };
  };
  /**
   * Runs a payment's change with the request's key and KeyAnswer; answers with the payment, or with the text its final
   * write stored on the key, sent as it is.
   */
  const withKey = async (
    request: FastifyRequest,
    reply: FastifyReply,
    run: (key: string | null, answer: KeyAnswer | undefined) => Promise<Payment>,
  ) => {
    const payment = await run(request.idempotency?.key ?? null, keyAnswer(request, reply));
    const stored = request.idempotency?.answeredInWrite;
    return stored === undefined ? payment : reply.type('application/json; charset=utf-8').send(stored);
  };

  app.post(
    '/v1/payments',
    {
      // The key is claimed by the payment's first write, in its transaction: one commit fewer for a keyed create.
      config: { auth: 'tenant', scope: 'payments:write', idempotency: 'claimed_in_write' },
      preValidation: limitCardTokenization(paymentBodyTokenizes),
      schema: {
        tags,
        summary: 'Create a payment',
        description:
          'Creates a payment; with `confirm: true` it is authorized at once (and captured, unless `capture_method` is `manual`). A decline answers 402 with the payment in `error.payment`.',
        body: { ...CreatePaymentBody, examples: [createExample] },
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request, reply) => {
      const held = request.idempotency;
      return withKey(request, reply, (key, answer) =>
        payments.create(
          tenantScope(request),
          request.body,
          request.id,
          key,
          held?.claimedInWrite ? held : undefined,
          answer,
        ),
      );
    },
  );

  app.get(
    '/v1/payments',
    {
      config: { auth: 'tenant', scope: 'payments:read' },
      schema: {
        tags,
        summary: 'List payments',
        description: EXPAND_DOC,
        querystring: PaymentListQuery,
        response: { 200: listOf('Payment', '/v1/payments'), ...errors },
      },
    },
    async (request) =>
      expander.list(tenantScope(request), 'payment', request.query['expand[]'], async () => ({
        object: 'list',
        url: '/v1/payments',
        ...(await payments.list(tenantScope(request), request.query)),
      })),
  );

  app.get(
    '/v1/payments/:id',
    {
      config: { auth: 'tenant', scope: 'payments:read', publishable: 'with_client_secret' },
      schema: {
        tags,
        summary: 'Retrieve a payment',
        description: `Includes every processor attempt, failovers included. ${EXPAND_DOC}${publishableNote}`,
        security: [{ secretKey: [] }, { publishableKey: [] }],
        params: IdParam,
        querystring: PaymentRetrieveQuery,
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request) =>
      expander.one(tenantScope(request), 'payment', request.query['expand[]'], () =>
        payments.retrieve(tenantScope(request), request.params.id),
      ),
  );

  app.post(
    '/v1/payments/:id',
    {
      config: { auth: 'tenant', scope: 'payments:write' },
      schema: {
        tags,
        summary: 'Update a payment',
        description:
          'Sets `description`, `customer` (a `cus_…` of yours; its saved card must be that customer’s), `statement_descriptor` (`""` clears one) and merges `metadata` (`""` removes a key), at any time except while a processor call is in flight; `amount` and `currency` only before confirmation. Emits `payment.updated`.',
        params: IdParam,
        body: { ...UpdatePaymentBody, examples: [{ metadata: { order_id: '1234' }, description: 'Order #1234' }] },
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request) => payments.update(tenantScope(request), request.params.id, request.body ?? null, request.id),
  );

  app.post(
    '/v1/payments/:id/confirm',
    {
      config: { auth: 'tenant', scope: 'payments:write', publishable: 'with_client_secret' },
      preValidation: limitCardTokenization(paymentBodyTokenizes),
      schema: {
        tags,
        summary: 'Confirm a payment',
        description:
          'Authorizes the payment with `payment_method` (or the one it has). From a browser, payforward.js calls ' +
          'this with the publishable key and the `client_secret`.' +
          publishableNote,
        security: [{ secretKey: [] }, { publishableKey: [] }],
        params: IdParam,
        body: ConfirmPaymentBody,
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request, reply) =>
      withKey(request, reply, (key, answer) =>
        payments.confirm(
          tenantScope(request),
          request.params.id,
          asBrowserConfirm(request, request.body ?? null),
          request.id,
          key,
          answer,
        ),
      ),
  );

  app.post(
    '/v1/payments/:id/capture',
    {
      config: { auth: 'tenant', scope: 'payments:write' },
      schema: {
        tags,
        summary: 'Capture a payment',
        description:
          'Captures an authorized payment in full or in part (`amount_to_capture`); the rest of the authorization is released.',
        params: IdParam,
        body: { ...CapturePaymentBody, examples: [{ amount_to_capture: 1500 }] },
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request, reply) =>
      withKey(request, reply, (key, answer) =>
        payments.capture(tenantScope(request), request.params.id, request.body ?? null, request.id, key, answer),
      ),
  );

  app.post(
    '/v1/payments/:id/cancel',
    {
      config: { auth: 'tenant', scope: 'payments:write' },
      schema: {
        tags,
        summary: 'Cancel a payment',
        description: 'Cancels a payment that is not yet captured; an authorization is voided.',
        params: IdParam,
        body: CancelPaymentBody,
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request) =>
      payments.cancel(
        tenantScope(request),
        request.params.id,
        request.body ?? null,
        request.id,
        undefined,
        request.idempotency?.key ?? null,
      ),
  );
};
