import { Type, type Static, type TSchema, type TProperties } from 'typebox';

/** Request objects reject unknown fields (400 parameter_unknown) instead of silently dropping them. */
export const StrictObject = <T extends TProperties>(properties: T, options: Record<string, unknown> = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

export const Metadata = Type.Record(Type.String({ maxLength: 40 }), Type.String({ maxLength: 500 }), {
  maxProperties: 50,
  description: 'Up to 50 key-value pairs of your own (keys ≤ 40 characters, values ≤ 500).',
});

export const IdParam = StrictObject({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const ListQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
  ending_before: Type.Optional(Type.String({ maxLength: 64 })),
  'created[gte]': Type.Optional(Type.Integer({ minimum: 0 })),
  'created[gt]': Type.Optional(Type.Integer({ minimum: 0 })),
  'created[lte]': Type.Optional(Type.Integer({ minimum: 0 })),
  'created[lt]': Type.Optional(Type.Integer({ minimum: 0 })),
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
