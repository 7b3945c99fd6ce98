import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { ErrorEnvelope, IdParam, ref } from './schemas.js';

export { ref };
import { PaymentSchema } from '../modules/payments/schemas.js';
import { PaymentMethodSchema, VerificationSchema } from '../modules/payment-methods/schemas.js';
import { RefundSchema } from '../modules/refunds/schemas.js';
import { DisputeSchema } from '../modules/disputes/schemas.js';
import { EventSchema } from '../modules/events/events.js';
import { ApiKeySchema, PublishableKeySchema } from '../modules/api-keys/service.js';
import { TenantSchema } from '../modules/tenants/service.js';
import { BalanceTransactionSchema } from '../modules/ledger/schemas.js';
import { SettlementSchema } from '../modules/settlements/schemas.js';
import { PayoutSchema } from '../modules/payouts/schemas.js';
import { BankAccountSchema } from '../modules/bank-accounts/schemas.js';
import {
  ReconciliationDiscrepancySchema,
  ReconciliationItemSchema,
  ReconciliationReportSchema,
} from '../modules/reconciliation/schemas.js';
import { ReportScheduleSchema, ReportSchema } from '../modules/reports/schemas.js';
import { CaseSchema } from '../modules/cases/schemas.js';
import { CustomerSchema } from '../modules/customers/schemas.js';
import { FeePreviewSchema, PricingPlanSchema } from '../modules/pricing/schemas.js';
import { RequestLogSchema } from '../modules/request-logs/schemas.js';
import { UserSchema } from '../modules/users/service.js';
import { WebhookDeliverySchema, WebhookEndpointSchema } from '../modules/webhooks/schemas.js';
import { BacktestSchema, ListItemSchema, ListSchema, ReviewSchema, RuleSchema } from '../modules/fraud/schemas.js';
import { AuditLogSchema } from '../modules/audit/schemas.js';
import { CheckoutSessionSchema } from '../modules/checkout/schemas.js';
import {
  AnalyticsBreakdownSchema,
  AnalyticsSummarySchema,
  AnalyticsTimeseriesSchema,
  OperatorBacklogSchema,
  OperatorProcessorsSchema,
  OperatorVolumeSchema,
} from '../modules/analytics/schemas.js';

/** Shared object schemas, registered once so routes and the OpenAPI document refer to them by name. */
export function registerSharedSchemas(app: FastifyInstance) {
  for (const schema of [
    ErrorEnvelope,
    PaymentSchema,
    PaymentMethodSchema,
    VerificationSchema,
    RefundSchema,
    DisputeSchema,
    EventSchema,
    ApiKeySchema,
    PublishableKeySchema,
    TenantSchema,
    PricingPlanSchema,
    FeePreviewSchema,
    BalanceTransactionSchema,
    SettlementSchema,
    PayoutSchema,
    BankAccountSchema,
    ReconciliationReportSchema,
    ReconciliationItemSchema,
    ReconciliationDiscrepancySchema,
    RequestLogSchema,
    ReportSchema,
    ReportScheduleSchema,
    CaseSchema,
    UserSchema,
    WebhookEndpointSchema,
    WebhookDeliverySchema,
    RuleSchema,
    ListSchema,
    ListItemSchema,
    ReviewSchema,
    BacktestSchema,
    CustomerSchema,
    AuditLogSchema,
    CheckoutSessionSchema,
    AnalyticsSummarySchema,
    AnalyticsTimeseriesSchema,
    AnalyticsBreakdownSchema,
    OperatorVolumeSchema,
    OperatorProcessorsSchema,
    OperatorBacklogSchema,
  ]) {
    app.addSchema(schema);
  }
}

export const listOf = (id: string, url: string) => ({
  type: 'object',
  properties: {
    object: { type: 'string', const: 'list' },
    url: { type: 'string', const: url },
    has_more: { type: 'boolean' },
    data: { type: 'array', items: ref(id) },
  },
  required: ['object', 'url', 'has_more', 'data'],
});

/** Every route can fail with the one error envelope. */
export const errors = { '4xx': ref('Error'), '5xx': ref('Error') };

/** A route's documentation in the OpenAPI document. */
export interface RouteDoc {
  tags: string[];
  summary: string;
  description?: string;
}

/** Options of a `GET /v1/<objects>` route: a page of `id` objects at `url`, filtered by `querystring`. */
export function listRoute<Config, Query extends TSchema>(
  config: Config,
  doc: RouteDoc,
  querystring: Query,
  id: string,
  url: string,
) {
  return { config, schema: { ...doc, querystring, response: { 200: listOf(id, url), ...errors } } };
}

/** Options of a `GET /v1/<objects>/:id` route answering one `id` object. */
export function retrieveRoute<Config>(config: Config, doc: RouteDoc, id: string) {
  return { config, schema: { ...doc, params: IdParam, response: { 200: ref(id), ...errors } } };
}
