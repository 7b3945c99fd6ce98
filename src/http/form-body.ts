import { parse } from 'qs';
import { ApiError } from './errors.js';

/**
 * Bodies that came as `application/x-www-form-urlencoded`: their validation coerces the form's texts to the numbers
 * and booleans the schema asks for (`amount=2000`, `confirm=true`), as a query string's is; JSON bodies stay strict.
 */
const formBodies = new WeakSet<object>();

export const isFormBody = (body: unknown) => typeof body === 'object' && body !== null && formBodies.has(body);

/**
 * Whether a route takes form bodies at all: the OpenAPI document lists forms by this, and the parser refuses them
 * elsewhere. A page on another site can make a browser send a form without a preflight but cannot add an
 * Authorization header, so a route that takes forms takes them only with that header (a key), unless it declares it
 * takes them without (the token endpoint, whose caller sends the key in the form). The routes anyone may call and the
 * dashboard's cookie therefore take JSON alone.
 */
export const routeTakesForms = (config: { auth?: string; formsWithoutAuthorization?: boolean }) =>
  config.auth !== 'none' || config.formsWithoutAuthorization === true;

/** The nesting Stripe's clients send (`payment_method[card][number]`, `metadata[key]`, `expand[]`) and no deeper. */
const MAX_DEPTH = 5;

/**
 * A form body in Stripe's bracket notation, parsed by qs (the parser Stripe's own libraries encode for). What qs
 * would otherwise quietly reshape (keys nested deeper than MAX_DEPTH, more parameters or array items than its limits)
 * is refused instead, and `__proto__` and the like never become keys.
 */
export function parseFormBody(text: string): Record<string, unknown> {
  let body: Record<string, unknown>;
  try {
    body = parse(text, {
      depth: MAX_DEPTH,
      strictDepth: true,
      parameterLimit: 1000,
      arrayLimit: 100,
      throwOnLimitExceeded: true,
      allowPrototypes: false,
      allowDots: false,
      charset: 'utf-8',
    });
  } catch (error) {
    throw ApiError.invalid(
      'invalid_form_body',
      `The form body cannot be read: ${error instanceof RangeError ? error.message : 'it is malformed'}.`,
    );
  }
  formBodies.add(body);
  return body;
}
