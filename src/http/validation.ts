import { ApiError } from './errors.js';

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

// "/payment_method/card/number" → "payment_method[card][number]", the form Stripe's `param` uses.
function paramName(instancePath: string, leaf?: string): string | null {
  const parts = instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (leaf !== undefined) parts.push(leaf);
  if (!parts.length) return null;
  const [head, ...rest] = parts;
  return head + rest.map((p) => `[${p}]`).join('');
}

/**
 * Turns the first schema violation into our error. Messages describe the rule broken, never the
 * value sent: a card number in the wrong field must not come back in an error.
 */
export function validationError(errors: readonly SchemaError[], context: string): ApiError {
  // In a union the deepest complaint is the useful one: "card[number] must match" beats "must be a string".
  const depth = (e: SchemaError) => e.instancePath.split('/').length;
  const candidates = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf');
  const relevant = candidates.reduce<SchemaError | undefined>((best, e) => (!best || depth(e) > depth(best) ? e : best), undefined) ?? errors[0];
  const where = context === 'querystring' ? 'query parameter' : context === 'params' ? 'path parameter' : 'parameter';
  if (!relevant) return ApiError.invalid('parameter_invalid', 'The request is invalid.');
  if (context === 'params') {
    return new ApiError('invalid_request_error', 'resource_missing', 'No such object.', paramName(relevant.instancePath), 404);
  }
  if (relevant.keyword === 'required') {
    const param = paramName(relevant.instancePath, String(relevant.params.missingProperty));
    return ApiError.invalid('parameter_missing', `Missing required ${where}: ${param}.`, param);
  }
  if (relevant.keyword === 'additionalProperties') {
    const param = paramName(relevant.instancePath, String(relevant.params.additionalProperty).slice(0, 64));
    return ApiError.invalid('parameter_unknown', `Received unknown ${where}: ${param}.`, param);
  }
  const param = paramName(relevant.instancePath);
  if (relevant.instancePath === '' && relevant.keyword === 'type') {
    return ApiError.invalid('parameter_invalid', 'The request body must be a JSON object.', null);
  }
  return ApiError.invalid('parameter_invalid', `Invalid ${where} ${param ?? ''}: ${relevant.message ?? 'invalid value'}.`.replace('  ', ' '), param);
}
