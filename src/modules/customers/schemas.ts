import { Type, type Static, type TSchema } from 'typebox';
import { ExpandQuery, ListQuery, Metadata, Nullable, NullableExpandable, StrictObject } from '../../http/schemas.js';

// Stripe's limits for the same fields; control characters are refused for every body by validation.ts.
const Email = Type.String({ maxLength: 512, pattern: '^[^@\\s]+@[^@\\s]+$', examples: ['jenny.rosen@example.com'] });
const Name = Type.String({ minLength: 1, maxLength: 256, examples: ['Jenny Rosen'] });
const Phone = Type.String({ minLength: 1, maxLength: 40, pattern: '^[0-9+() .-]+$', examples: ['+1 415 555 0100'] });
/** An empty string clears the field, as on Stripe. */
const Clearable = <T extends TSchema>(schema: T) =>
  Type.Union([schema, Type.Literal('')], { description: 'An empty string clears it.' });

export const CustomerId = Type.String({ pattern: '^cus_[a-z0-9]+$', maxLength: 64, examples: ['cus_01jd7s0k2m3n'] });

export const CreateCustomerBody = Type.Union([
  StrictObject({
    email: Type.Optional(Email),
    name: Type.Optional(Name),
    phone: Type.Optional(Phone),
    metadata: Type.Optional(Metadata),
  }),
  Type.Null(),
]);
export type CreateCustomerBody = Static<typeof CreateCustomerBody>;

export const UpdateCustomerBody = Type.Union([
  StrictObject({
    email: Type.Optional(Clearable(Email)),
    name: Type.Optional(Clearable(Name)),
    phone: Type.Optional(Clearable(Phone)),
    metadata: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        ...Metadata,
        description: 'Merged into the current metadata; a key set to "" is removed.',
      }),
    ),
    default_payment_method: Type.Optional(
      Type.Union([Type.String({ pattern: '^pm_[a-z0-9]+$', maxLength: 64 }), Type.Literal('')], {
        description: 'A card attached to this customer; "" clears it.',
      }),
    ),
  }),
  Type.Null(),
]);
export type UpdateCustomerBody = Static<typeof UpdateCustomerBody>;

export const AttachBody = StrictObject({ customer: CustomerId });

export const CustomerSchema = Type.Object(
  {
    id: Type.String({ examples: ['cus_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('customer'),
    email: Nullable(Type.String()),
    name: Nullable(Type.String()),
    phone: Nullable(Type.String()),
    metadata: Metadata,
    default_payment_method: NullableExpandable(
      'PaymentMethod',
      'The card charged when none is named; one of the customer’s attached cards.',
    ),
    erased: Type.Boolean({ description: 'Its personal data was erased (POST /v1/customers/{id}/erase).' }),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Customer' },
);
export type Customer = Static<typeof CustomerSchema>;

export const DeletedCustomerSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('customer'),
  deleted: Type.Literal(true),
});

export const CustomerListQuery = StrictObject({
  ...ListQuery,
  email: Type.Optional(Type.String({ maxLength: 512, description: 'Exact email, case-insensitive.' })),
  ...ExpandQuery,
});

export const CustomerRetrieveQuery = StrictObject(ExpandQuery);
