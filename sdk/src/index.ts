import type { components } from './schema.js';

export {
  PayForward,
  type CallOptions,
  type PayForwardOptions,
  type SessionAuth,
  type QueryParams,
  type RequestBody,
  type ResponseBody,
} from './client.js';
export { PayForwardConnectionError, PayForwardError, PayForwardSignatureError } from './errors.js';
export { autoPaginate, type Page } from './pagination.js';
export { backoff, retryAfterMs, type RetryOptions } from './retry.js';
export { verifyWebhook, type WebhookHeaders } from './webhooks.js';
export { API_VERSION } from './api-version.js';
export type { components, operations, paths } from './schema.js';

type Schemas = components['schemas'];
export type Payment = Schemas['Payment'];
export type Refund = Schemas['Refund'];
export type Customer = Schemas['Customer'];
export type PaymentMethod = Schemas['PaymentMethod'];
export type BalanceTransaction = Schemas['BalanceTransaction'];
export type Event = Schemas['Event'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type Dispute = Schemas['Dispute'];
export type Payout = Schemas['Payout'];
export type ApiErrorBody = Schemas['Error'];
