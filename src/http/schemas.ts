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
