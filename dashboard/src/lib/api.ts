import { PayForward, PayForwardError, type components, type ResponseBody } from '../../../sdk/src/index.ts';

export { PayForwardError };
export type {
  BalanceTransaction,
  Customer,
  Dispute,
  Event,
  Payment,
  PaymentMethod,
  Refund,
  QueryParams,
  RequestBody,
  ResponseBody,
} from '../../../sdk/src/index.ts';
export type Session = ResponseBody<'/v1/sessions/current', 'get'>;

let csrfToken: string | null = null;

/** The session's CSRF token, set when the session is known; the SDK sends it on every state change. */
export function setCsrfToken(token: string | null) {
  csrfToken = token;
}

/**
 * The one API client of the dashboard: the TypeScript SDK in cookie mode against this origin. Pages call
 * `payforward.<resource>.<method>` or `payforward.api.GET/POST(path, …)` (every operation, typed from the schema).
 */
export const payforward = new PayForward({
  baseUrl: window.location.origin,
  session: { csrfToken: () => csrfToken },
  // A person is waiting: one quick retry of a network blip, not the SDK's patient backoff for servers.
  retry: { maxRetries: 1 },
  timeoutMs: 30_000,
});

export const api = payforward.api;

/** Whether the session's role allows `scope` (e.g. `refunds:write`); the API refuses the call anyway if not. */
export const can = (session: Session, scope: string) => session.scopes.includes(scope);

export const isOperator = (session: Session) => session.role.startsWith('operator_');

/** An object of the public API by its schema name (`Schema<'Review'>`), for pages the SDK has no shortcut for. */
export type Schema<K extends keyof components['schemas']> = components['schemas'][K];
