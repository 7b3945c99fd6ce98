import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ClientSecrets } from '../../http/client-secret.js';
import { tenantScope } from '../../http/tenant-scope.js';

/**
 * What a publishable key sees of a payment (Stripe's choice, too): enough for the buyer's page to know where it stands
 * and to handle 3-D Secure, nothing about fees, fraud scoring, processors or metadata.
 */
export const PUBLISHABLE_PAYMENT_FIELDS = [
  'id',
  'object',
  'amount',
  'currency',
  'status',
  'capture_method',
  'client_secret',
  'payment_method',
  'description',
  'last_payment_error',
  'next_action',
  'canceled_at',
  'cancellation_reason',
  'created',
  'livemode',
] as const;

type Json = Record<string, unknown>;
const isPayment = (value: unknown): value is Json & { id: string } =>
  typeof value === 'object' && value !== null && (value as Json).object === 'payment';

/** A related object stays an id for a publishable key, even if a request managed to have it expanded. */
const idOf = (value: unknown) =>
  typeof value === 'object' && value !== null && typeof (value as Json).id === 'string' ? (value as Json).id : value;

const pick = (payment: Json) =>
  Object.fromEntries(PUBLISHABLE_PAYMENT_FIELDS.filter((field) => field in payment).map((f) => [f, idOf(payment[f])]));

/**
 * The payments routes' `preSerialization` hook. A secret or restricted key gets each payment with its
 * `client_secret`, to hand to the buyer's browser; a publishable key gets only PUBLISHABLE_PAYMENT_FIELDS, in the
 * answer and in a decline's `error.payment`. Events and webhooks never carry the secret: they are built from the
 * payment before this runs, and are stored and delivered where a credential has no business being kept.
 */
export function paymentClientView(secrets: ClientSecrets) {
  return function clientView(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const auth = request.auth;
    if (auth?.kind !== 'tenant' || typeof payload !== 'object' || payload === null) return payload;
    const scope = tenantScope(request);
    const withSecret = (payment: Json & { id: string }) => ({
      ...payment,
      client_secret: secrets.for(scope, payment.id),
    });
    const body = payload as Json;
    const error = body.error as Json | undefined;
    if (auth.via === 'publishable_key') {
      if (error && isPayment(error.payment)) return { error: { ...error, payment: pick(withSecret(error.payment)) } };
      if (!isPayment(body)) return payload;
      // The route's response schema describes the full payment; this smaller one is written as it is.
      reply.serializer(JSON.stringify);
      return pick(withSecret(body));
    }
    if (isPayment(body)) return withSecret(body);
    if (error && isPayment(error.payment)) return { error: { ...error, payment: withSecret(error.payment) } };
    if (body.object === 'list' && Array.isArray(body.data))
      return { ...body, data: body.data.map((item: unknown) => (isPayment(item) ? withSecret(item) : item)) };
    return payload;
  };
}
