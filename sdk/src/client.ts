import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { API_VERSION } from './api-version.js';
import { PayForwardError } from './errors.js';
import { autoPaginate, type Page } from './pagination.js';
import { retryingFetch, type RetryOptions } from './retry.js';
import type { paths } from './schema.js';
import { verifyWebhook, type WebhookHeaders } from './webhooks.js';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;
/** The JSON body an operation takes. */
export type RequestBody<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: infer R;
}
  ? Json<NonNullable<R>>
  : never;
/** The query parameters an operation takes. */
export type QueryParams<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;
/** What an operation answers with 200. */
export type ResponseBody<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: { 200: infer R };
}
  ? Json<R>
  : never;

/**
 * A signed-in team member's browser session instead of a key: the `pf_session` cookie goes with every request (the
 * browser holds it, HttpOnly), and each state-changing request carries the session's CSRF token.
 */
export interface SessionAuth {
  /** The CSRF token of the session (from POST /v1/sessions/mfa or GET /v1/sessions/current), read at each request. */
  csrfToken: () => string | null | undefined;
}

export interface PayForwardOptions {
  /** A secret key (`sk_test_…`, `sk_live_…`), a restricted key or an access token. Give this or `session`. */
  apiKey?: string;
  /** Cookie mode, for the dashboard and other pages of the API's own origin. Give this or `apiKey`. */
  session?: SessionAuth;
  /** The API's origin, e.g. `https://api.payforward.example`. */
  baseUrl: string;
  /**
   * The `PayForward-Version` every request sends: by default the version this SDK was generated for, so the shapes
   * match its types whatever version the tenant is pinned to. `null` sends none (the tenant's pinned version).
   */
  apiVersion?: string | null;
  /** Retries of network failures, timeouts, 409 `idempotency_key_in_use`, 429 and 5xx. */
  retry?: RetryOptions;
  /** Each try is abandoned (and retried) after this long; default 60 s. */
  timeoutMs?: number;
  /** Makes the Idempotency-Key of each POST that has none; default `crypto.randomUUID()`. */
  idempotencyKey?: () => string;
  /** Another fetch (a proxy agent, a test double). */
  fetch?: typeof fetch;
}

/** Per call: an Idempotency-Key of your own (e.g. your order id), kept across the SDK's retries. */
export interface CallOptions {
  idempotencyKey?: string;
  signal?: AbortSignal;
}

const callHeaders = (options?: CallOptions) =>
  options?.idempotencyKey ? { 'Idempotency-Key': options.idempotencyKey } : undefined;

/** Any answer but 2xx becomes a thrown PayForwardError, so every call returns its data or throws. */
const throwOnError: Middleware = {
  async onResponse({ response }) {
    if (response.ok) return undefined;
    const body = await response
      .clone()
      .json()
      .catch(() => null);
    throw PayForwardError.fromResponse(response, body);
  },
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The API refuses a cookie-authenticated state change without the session's token (403 csrf_token_invalid). */
const csrfHeader = (session: SessionAuth): Middleware => ({
  onRequest({ request }) {
    const token = session.csrfToken();
    if (SAFE_METHODS.has(request.method) || !token) return undefined;
    request.headers.set('X-CSRF-Token', token);
    return request;
  },
});

/**
 * PayForward's API client. `api` is the client generated from the OpenAPI document (every operation, typed); the
 * resources below are shortcuts for the main objects. Both retry safely, throw PayForwardError, and pin the version.
 */
export class PayForward {
  /** Every operation of the API: `await payforward.api.POST('/v1/refunds', { body })` returns `{ data }`. */
  readonly api: Client<paths>;

  constructor(options: PayForwardOptions) {
    const version = options.apiVersion === undefined ? API_VERSION : options.apiVersion;
    if ((options.apiKey === undefined) === (options.session === undefined))
      throw new TypeError('PayForward needs exactly one of apiKey and session');
    this.api = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/$/, ''),
      headers: {
        ...(options.apiKey === undefined ? {} : { Authorization: `Bearer ${options.apiKey}` }),
        ...(version === null ? {} : { 'PayForward-Version': version }),
      },
      ...(options.session ? { credentials: 'include' as const } : {}),
      fetch: retryingFetch({
        ...options.retry,
        fetch: options.fetch ?? ((request) => fetch(request)),
        timeoutMs: options.timeoutMs ?? 60_000,
        newIdempotencyKey: options.idempotencyKey ?? (() => crypto.randomUUID()),
      }),
    });
    if (options.session) this.api.use(csrfHeader(options.session));
    this.api.use(throwOnError);
  }

  /** Returns the data of a call that did not throw. */
  private static async data<T>(call: Promise<{ data?: T }>): Promise<T> {
    return (await call).data as T;
  }

  readonly payments = {
    create: (body: RequestBody<'/v1/payments', 'post'>, options?: CallOptions) =>
      PayForward.data(this.api.POST('/v1/payments', { body, headers: callHeaders(options), signal: options?.signal })),
    retrieve: (id: string, query?: QueryParams<'/v1/payments/{id}', 'get'>) =>
      PayForward.data(this.api.GET('/v1/payments/{id}', { params: { path: { id }, query } })),
    update: (id: string, body: RequestBody<'/v1/payments/{id}', 'post'>, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payments/{id}', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    confirm: (id: string, body: RequestBody<'/v1/payments/{id}/confirm', 'post'> = {}, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payments/{id}/confirm', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    capture: (id: string, body: RequestBody<'/v1/payments/{id}/capture', 'post'> = {}, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payments/{id}/capture', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    cancel: (id: string, body: RequestBody<'/v1/payments/{id}/cancel', 'post'> = {}, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payments/{id}/cancel', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    list: (query?: QueryParams<'/v1/payments', 'get'>) =>
      PayForward.data(this.api.GET('/v1/payments', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/payments', 'get'>) =>
      autoPaginate((starting_after) => this.payments.list({ ...query, starting_after })),
    search: (query: QueryParams<'/v1/payments/search', 'get'>) =>
      PayForward.data(this.api.GET('/v1/payments/search', { params: { query } })),
  };

  readonly refunds = {
    create: (body: RequestBody<'/v1/refunds', 'post'>, options?: CallOptions) =>
      PayForward.data(this.api.POST('/v1/refunds', { body, headers: callHeaders(options), signal: options?.signal })),
    retrieve: (id: string, query?: QueryParams<'/v1/refunds/{id}', 'get'>) =>
      PayForward.data(this.api.GET('/v1/refunds/{id}', { params: { path: { id }, query } })),
    list: (query?: QueryParams<'/v1/refunds', 'get'>) =>
      PayForward.data(this.api.GET('/v1/refunds', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/refunds', 'get'>) =>
      autoPaginate((starting_after) => this.refunds.list({ ...query, starting_after })),
  };

  readonly customers = {
    create: (body: RequestBody<'/v1/customers', 'post'> = {}, options?: CallOptions) =>
      PayForward.data(this.api.POST('/v1/customers', { body, headers: callHeaders(options) })),
    retrieve: (id: string, query?: QueryParams<'/v1/customers/{id}', 'get'>) =>
      PayForward.data(this.api.GET('/v1/customers/{id}', { params: { path: { id }, query } })),
    update: (id: string, body: RequestBody<'/v1/customers/{id}', 'post'>, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/customers/{id}', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    del: (id: string) => PayForward.data(this.api.DELETE('/v1/customers/{id}', { params: { path: { id } } })),
    list: (query?: QueryParams<'/v1/customers', 'get'>) =>
      PayForward.data(this.api.GET('/v1/customers', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/customers', 'get'>) =>
      autoPaginate((starting_after) => this.customers.list({ ...query, starting_after })),
    listPaymentMethods: (id: string, query?: QueryParams<'/v1/customers/{id}/payment_methods', 'get'>) =>
      PayForward.data(this.api.GET('/v1/customers/{id}/payment_methods', { params: { path: { id }, query } })),
    search: (query: QueryParams<'/v1/customers/search', 'get'>) =>
      PayForward.data(this.api.GET('/v1/customers/search', { params: { query } })),
  };

  readonly paymentMethods = {
    create: (body: RequestBody<'/v1/payment_methods', 'post'>, options?: CallOptions) =>
      PayForward.data(this.api.POST('/v1/payment_methods', { body, headers: callHeaders(options) })),
    retrieve: (id: string, query?: QueryParams<'/v1/payment_methods/{id}', 'get'>) =>
      PayForward.data(this.api.GET('/v1/payment_methods/{id}', { params: { path: { id }, query } })),
    list: (query?: QueryParams<'/v1/payment_methods', 'get'>) =>
      PayForward.data(this.api.GET('/v1/payment_methods', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/payment_methods', 'get'>) =>
      autoPaginate((starting_after) => this.paymentMethods.list({ ...query, starting_after })),
    attach: (id: string, body: RequestBody<'/v1/payment_methods/{id}/attach', 'post'>, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payment_methods/{id}/attach', {
          params: { path: { id } },
          body,
          headers: callHeaders(options),
        }),
      ),
    detach: (id: string, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payment_methods/{id}/detach', { params: { path: { id } }, headers: callHeaders(options) }),
      ),
    verify: (id: string, body: RequestBody<'/v1/payment_methods/{id}/verify', 'post'> = {}, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/payment_methods/{id}/verify', {
          params: { path: { id } },
          body,
          headers: callHeaders(options),
        }),
      ),
  };

  readonly webhookEndpoints = {
    create: (body: RequestBody<'/v1/webhook_endpoints', 'post'>, options?: CallOptions) =>
      PayForward.data(this.api.POST('/v1/webhook_endpoints', { body, headers: callHeaders(options) })),
    retrieve: (id: string) => PayForward.data(this.api.GET('/v1/webhook_endpoints/{id}', { params: { path: { id } } })),
    update: (id: string, body: RequestBody<'/v1/webhook_endpoints/{id}', 'post'>, options?: CallOptions) =>
      PayForward.data(
        this.api.POST('/v1/webhook_endpoints/{id}', { params: { path: { id } }, body, headers: callHeaders(options) }),
      ),
    del: (id: string) => PayForward.data(this.api.DELETE('/v1/webhook_endpoints/{id}', { params: { path: { id } } })),
    list: (query?: QueryParams<'/v1/webhook_endpoints', 'get'>) =>
      PayForward.data(this.api.GET('/v1/webhook_endpoints', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/webhook_endpoints', 'get'>) =>
      autoPaginate((starting_after) => this.webhookEndpoints.list({ ...query, starting_after })),
  };

  readonly events = {
    retrieve: (id: string) => PayForward.data(this.api.GET('/v1/events/{id}', { params: { path: { id } } })),
    list: (query?: QueryParams<'/v1/events', 'get'>) =>
      PayForward.data(this.api.GET('/v1/events', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/events', 'get'>) =>
      autoPaginate((starting_after) => this.events.list({ ...query, starting_after })),
  };

  readonly balanceTransactions = {
    retrieve: (id: string) =>
      PayForward.data(this.api.GET('/v1/balance_transactions/{id}', { params: { path: { id } } })),
    list: (query?: QueryParams<'/v1/balance_transactions', 'get'>) =>
      PayForward.data(this.api.GET('/v1/balance_transactions', { params: { query } })),
    listAll: (query?: QueryParams<'/v1/balance_transactions', 'get'>) =>
      autoPaginate((starting_after) => this.balanceTransactions.list({ ...query, starting_after })),
  };

  /** Webhook signature verification (Standard Webhooks); needs no API key. */
  static readonly webhooks = { verify: verifyWebhook };
  readonly webhooks = {
    verify: (payload: string | Uint8Array, headers: WebhookHeaders, secrets: string | string[]) =>
      verifyWebhook(payload, headers, secrets),
  };
}

export type { Page };
