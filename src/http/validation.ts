import { ApiError } from './errors.js';
import { maskCardNumbers } from './logging.js';
import { METADATA_LIMITS } from './schemas.js';

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
  /** Set by ajv when a `propertyNames` rule failed: the offending key. */
  propertyName?: string;
}

// "/payment_method/card/number" → "payment_method[card][number]", the form Stripe's `param` uses.
// Names are the client's text (an unknown field, a metadata key), so a card number sent as a name
// is redacted like any echoed value.
function paramName(instancePath: string, leaf?: string): string | null {
  const parts = instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (leaf !== undefined) parts.push(leaf);
  if (!parts.length) return null;
  const [head, ...rest] = parts;
  return maskCardNumbers(head + rest.map((p) => `[${p}]`).join(''));
}

/**
 * Turns the first schema violation into our error. Messages describe the rule broken, never the
 * value sent: a card number in the wrong field must not come back in an error.
 */
export function validationError(errors: readonly SchemaError[], context: string): ApiError {
  // In a union the deepest complaint is the useful one: "card[number] must match" beats "must be a string".
  // At equal depth a type mismatch is only the alternative that did not apply: an inline
  // payment_method with an unknown field is "unknown payment_method[extra]", not "must be a string".
  const rank = (e: SchemaError) => e.instancePath.split('/').length * 2 + (e.keyword === 'type' ? 0 : 1);
  const candidates = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf');
  const relevant =
    candidates.reduce<SchemaError | undefined>((best, e) => (!best || rank(e) > rank(best) ? e : best), undefined) ??
    errors[0];
  const where = context === 'querystring' ? 'query parameter' : context === 'params' ? 'path parameter' : 'parameter';
  if (!relevant) return ApiError.invalid('parameter_invalid', 'The request is invalid.');
  if (context === 'params') {
    return new ApiError(
      'invalid_request_error',
      'resource_missing',
      'No such object.',
      paramName(relevant.instancePath),
      404,
    );
  }
  if (relevant.keyword === 'required') {
    const param = paramName(relevant.instancePath, String(relevant.params.missingProperty));
    return ApiError.invalid('parameter_missing', `Missing required ${where}: ${param}.`, param);
  }
  if (relevant.keyword === 'additionalProperties') {
    const param = paramName(relevant.instancePath, String(relevant.params.additionalProperty).slice(0, 64));
    return ApiError.invalid('parameter_unknown', `Received unknown ${where}: ${param}.`, param);
  }
  if (relevant.propertyName !== undefined) {
    const param = paramName(relevant.instancePath, relevant.propertyName.slice(0, 64));
    return ApiError.invalid('parameter_invalid', `Invalid ${where} ${param}: ${keyRule(relevant.keyword)}.`, param);
  }
  const param = paramName(relevant.instancePath);
  const allowed = allowedValues(candidates, relevant);
  if (allowed) {
    return ApiError.invalid(
      'parameter_invalid',
      `Invalid ${where} ${param ?? ''}: must be one of ${allowed.join(', ')}.`.replace('  ', ' '),
      param,
    );
  }
  if (relevant.keyword === 'maxProperties') {
    return ApiError.invalid(
      'parameter_invalid',
      `Invalid ${where} ${param ?? ''}: at most ${String(relevant.params.limit)} keys are allowed.`.replace('  ', ' '),
      param,
    );
  }
  if (relevant.instancePath === '' && relevant.keyword === 'type') {
    return ApiError.invalid('parameter_invalid', 'The request body must be a JSON object.', null);
  }
  return ApiError.invalid(
    'parameter_invalid',
    `Invalid ${where} ${param ?? ''}: ${relevant.message ?? 'invalid value'}.`.replace('  ', ' '),
    param,
  );
}

// Only metadata keys are constrained by `propertyNames` today; the inner keyword says which rule a key broke.
function keyRule(keyword: string): string {
  if (keyword === 'maxLength') return `keys can be at most ${METADATA_LIMITS.keyLength} characters long`;
  if (keyword === 'minLength') return 'keys cannot be empty';
  if (keyword === 'pattern') return 'keys cannot contain control characters';
  return 'invalid key';
}

// An enum names its values; a union of literals fails once per literal, each naming one value.
function allowedValues(errors: readonly SchemaError[], relevant: SchemaError): string[] | undefined {
  if (relevant.keyword === 'enum') return (relevant.params.allowedValues as unknown[]).map(String);
  if (relevant.keyword !== 'const') return undefined;
  return errors
    .filter((e) => e.keyword === 'const' && e.instancePath === relevant.instancePath)
    .map((e) => String(e.params.allowedValue));
}

/**
 * A query parameter given twice (`?limit=1&limit=2`) arrives as an array. Only list parameters, named with `[]`
 * (`expand[]`), may repeat; for any other, picking one of the values silently would answer a question not asked.
 */
export function rejectRepeatedQueryParameters(query: unknown): void {
  if (query === null || typeof query !== 'object') return;
  for (const [name, value] of Object.entries(query)) {
    if (!Array.isArray(value) || name.endsWith('[]')) continue;
    const param = paramName('', name.slice(0, 64));
    throw ApiError.invalid('parameter_invalid', `Query parameter ${param} was given more than once.`, param);
  }
}

// PostgreSQL text cannot hold U+0000, and jsonb cannot hold an unpaired UTF-16 surrogate ("\ud800").
// eslint-disable-next-line no-control-regex -- U+0000 is exactly what must be found
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const storable = (text: string) => !UNSTORABLE.test(text);

/**
 * Refuses, as a parameter error, any string or object key in a request that PostgreSQL could not
 * store: otherwise it passes the schema and fails the write with a 500. The walk is iterative
 * because bodies may nest thousands of levels before validation rejects them; `param` names the
 * top-level field (never the offending text itself).
 */
export function rejectUnstorableText(value: unknown, where: 'body' | 'querystring' | 'params'): void {
  const stack: Array<[unknown, string | null]> = [[value, null]];
  while (stack.length) {
    const [current, field] = stack.pop()!;
    if (typeof current === 'string') {
      if (!storable(current)) throw unstorable(field, where);
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    for (const [key, child] of Object.entries(current)) {
      if (!storable(key)) throw unstorable(field, where);
      stack.push([child, field ?? key]);
    }
  }
}

function unstorable(field: string | null, where: 'body' | 'querystring' | 'params'): ApiError {
  const param = field === null ? null : paramName('', field);
  if (where === 'params')
    return new ApiError('invalid_request_error', 'resource_missing', 'No such object.', param, 404);
  return ApiError.invalid(
    'parameter_invalid',
    `Invalid ${where === 'querystring' ? 'query parameter' : 'parameter'}${param ? ` ${param}` : ''}: text cannot contain NUL characters or unpaired UTF-16 surrogates.`,
    param,
  );
}
