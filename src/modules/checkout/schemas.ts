import { Type, type Static } from 'typebox';
import { ListQuery, Metadata, Nullable, StrictObject } from '../../http/schemas.js';

export const CHECKOUT_STATUSES = ['open', 'complete', 'expired'] as const;

/** Default and longest life of a session, as Stripe's: 24 hours. */
export const DEFAULT_EXPIRY_SECONDS = 24 * 3600;
const MIN_EXPIRY_SECONDS = 30 * 60;

const RedirectUrl = (description: string) =>
  Type.String({
    maxLength: 2048,
    pattern: '^https?://[^\\s]+$',
    description,
    examples: ['https://shop.example.com/done'],
  });

export const CreateCheckoutSessionBody = StrictObject({
  amount: Type.Integer({
    minimum: 1,
    maximum: 1_000_000_000_000,
    description: "Integer in the currency's minor unit.",
    examples: [4900],
  }),
  currency: Type.String({ pattern: '^[a-zA-Z]{3}$', examples: ['eur'] }),
  success_url: RedirectUrl('Where the buyer is sent once the payment succeeded.'),
  cancel_url: RedirectUrl('Where the "Cancel" link on the page sends the buyer back to.'),
  customer: Type.Optional(Type.String({ pattern: '^cus_[a-z0-9]+$', maxLength: 64 })),
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  metadata: Type.Optional(Metadata),
  expires_in: Type.Optional(
    Type.Integer({
      minimum: MIN_EXPIRY_SECONDS,
      maximum: DEFAULT_EXPIRY_SECONDS,
      description: 'Seconds until the session expires: 30 minutes to 24 hours (the default).',
    }),
  ),
});
export type CreateCheckoutSessionBody = Static<typeof CreateCheckoutSessionBody>;

export const CheckoutSessionListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: [...CHECKOUT_STATUSES] })),
});
export type CheckoutSessionListQuery = Static<typeof CheckoutSessionListQuery>;

export const ExpireCheckoutSessionBody = Type.Union([StrictObject({}), Type.Null()]);

export const CheckoutSessionSchema = Type.Object(
  {
    id: Type.String({ examples: ['cs_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('checkout.session'),
    status: Type.String({ enum: [...CHECKOUT_STATUSES] }),
    payment_status: Type.String({ enum: ['unpaid', 'paid'] }),
    url: Nullable(
      Type.String({ description: 'The page to send the buyer to; null once the session is complete or expired.' }),
    ),
    payment: Type.String({ description: 'The payment the page confirms (`pay_…`).' }),
    amount: Type.Integer(),
    currency: Type.String(),
    customer: Nullable(Type.String()),
    success_url: Type.String(),
    cancel_url: Type.String(),
    metadata: Metadata,
    expires_at: Type.Integer(),
    completed_at: Nullable(Type.Integer()),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'CheckoutSession' },
);
export type CheckoutSession = Static<typeof CheckoutSessionSchema>;
