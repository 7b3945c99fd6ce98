import { Type, type Static, type TSchema, type TProperties } from 'typebox';

/** Request objects reject unknown fields (400 parameter_unknown) instead of silently dropping them. */
export const StrictObject = <T extends TProperties>(properties: T, options: Record<string, unknown> = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

export const METADATA_LIMITS = { keys: 50, keyLength: 40, valueLength: 500 } as const;

// Stripe's limits. `propertyNames` checks every key: a record's key pattern (`^.*$`) does not
// match a key holding a line break, and such a key escaped the value check altogether.
export const Metadata = Type.Unsafe<Record<string, string>>({
  type: 'object',
  maxProperties: METADATA_LIMITS.keys,
  propertyNames: {
    type: 'string',
    minLength: 1,
    maxLength: METADATA_LIMITS.keyLength,
    pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]*$',
  },
  additionalProperties: { type: 'string', maxLength: METADATA_LIMITS.valueLength },
  description:
    'Up to 50 key-value pairs of your own: keys of 1 to 40 characters without control characters, values strings ' +
    'of at most 500 characters.',
});

export const IdParam = StrictObject({ id: Type.String({ minLength: 1, maxLength: 64 }) });

/**
 * The last second of year 9999 (UTC), the end of four-digit years. Unbounded, a timestamp such as
 * `created[gte]=999999999999999999999999` made no valid date and the query failed with a 500.
 */
export const MAX_TIMESTAMP = 253_402_300_799;

/** A calendar day (YYYY-MM-DD) PostgreSQL's date holds: it has no year 0, which the `date` format allows. */
export const DateQuery = (description: string) =>
  Type.String({ format: 'date', pattern: '^(?!0000)[0-9]{4}-', description });

const Timestamp = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, description });

export const ListQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  starting_after: Type.Optional(
    Type.String({ maxLength: 64, description: 'An object id from a previous page: the page after it.' }),
  ),
  ending_before: Type.Optional(
    Type.String({ maxLength: 64, description: 'An object id from a previous page: the page before it.' }),
  ),
  'created[gte]': Type.Optional(Timestamp('Created at or after this Unix timestamp.')),
  'created[gt]': Type.Optional(Timestamp('Created after this Unix timestamp.')),
  'created[lte]': Type.Optional(Timestamp('Created at or before this Unix timestamp.')),
  'created[lt]': Type.Optional(Timestamp('Created before this Unix timestamp.')),
};

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      type: Type.String(),
      code: Type.String(),
      message: Type.String(),
      param: Type.Union([Type.String(), Type.Null()]),
      decline_code: Type.Optional(Type.String()),
      request_id: Type.Optional(Type.String()),
      payment: Type.Optional(Type.Unknown()),
    }),
  },
  { $id: 'Error', description: 'Every failure, whatever its cause, has this shape.' },
);

// `type: [T, "null"]` rather than anyOf: the response serializer (fast-json-stringify) resolves
// an anyOf by running a schema validator on every value, which showed in the payment hot path.
export const Nullable = <T extends TSchema>(schema: T) => {
  const { type } = schema as unknown as { type: string };
  return Type.Unsafe<Static<T> | null>({ ...schema, type: [type, 'null'] });
};

/** A reference to a shared schema registered with app.addSchema. */
export const ref = (id: string) => ({ $ref: `${id}#` });

/**
 * An object in place of its id. Its exact type is the document's (`$ref`): the static types of objects that expand
 * into each other (a payment's refunds, a refund's payment) would reference themselves.
 */
export type ExpandedObject = { id: string; object: string } & Record<string, unknown>;

/**
 * A field holding another object's id, or that object itself when the request asks for it with `expand[]`
 * (Stripe's expandable fields). The id comes first: it is what the serializer meets on every response without
 * an expansion, and it settles an `anyOf` with one cheap type check.
 */
export const Expandable = (id: string, description: string) =>
  Type.Unsafe<string | ExpandedObject>({
    anyOf: [{ type: 'string' }, ref(id)],
    description: `${description} Expandable: the id, or the ${id} object with \`expand[]\`.`,
  });

/** An expandable field that may be empty; null is checked second, before the object. */
export const NullableExpandable = (id: string, description: string) =>
  Type.Unsafe<string | ExpandedObject | null>({
    anyOf: [{ type: 'string' }, { type: 'null' }, ref(id)],
    description: `${description} Expandable: the id, or the ${id} object with \`expand[]\`.`,
  });

export const EXPAND_LIMITS = { paths: 20, depth: 4 } as const;

/** `expand[]=customer&expand[]=payment_method` (or `data.customer` on a list): see src/modules/expand. */
export const ExpandQuery = {
  'expand[]': Type.Optional(
    Type.Union(
      [
        Type.String({ minLength: 1, maxLength: 200 }),
        Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: EXPAND_LIMITS.paths }),
      ],
      {
        description: `Related objects to return in place of their ids, as dotted paths of at most ${EXPAND_LIMITS.depth} levels (on a list, each starts with \`data.\`). Repeat for several.`,
      },
    ),
  ),
};
