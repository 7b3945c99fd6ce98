import { logListenRetries } from '../../http/notification-listener.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { auditContext } from '../../http/audit-context.js';
import { Type } from 'typebox';
import type { TenantAuth } from '../../http/auth.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import {
  BacktestBody,
  CloseReviewBody,
  CreateListBody,
  CreateListItemBody,
  CreateRuleBody,
  ReportFraudBody,
  ReviewListQuery,
  UpdateRuleBody,
} from './schemas.js';

const tags = ['Fraud'];
const fraudRead = { auth: 'tenant', scope: 'fraud:read' } as const;
const fraudWrite = { auth: 'tenant', scope: 'fraud:write' } as const;
const reviewsRead = { auth: 'tenant', scope: 'reviews:read' } as const;
const reviewsWrite = { auth: 'tenant', scope: 'reviews:write' } as const;

const deleted = (object: string) =>
  Type.Object({ id: Type.String(), object: Type.Literal(object), deleted: Type.Literal(true) });
const allOf = (id: string, url: string) => listOf(id, url);
const ItemParams = StrictObject({
  id: Type.String({ minLength: 1, maxLength: 64 }),
  item: Type.String({ minLength: 1, maxLength: 64 }),
});
const who = (auth: unknown) => (auth as TenantAuth).keyId;

const RULES_DESCRIPTION =
  'Rules are CEL expressions (https://cel.dev) over the documented variables: `amount`, `currency`, `card.bin`, ' +
  '`card.brand`, `card.country`, `card.fingerprint`, `card.funding`, `ip.address`, `ip.country`, `billing_country`, ' +
  '`email`, `customer`, `risk_score` (0–100), `risk_level` (normal, elevated, highest), `velocity.<feature>`, ' +
  "`lists.contains('<list name>', value)`, `hour` and `day_of_week` (UTC). An unknown value is `''`. Rules run in " +
  '`priority` order (lower first); the first enabled, non-shadow rule that matches decides the action. Shadow rules ' +
  'are evaluated and logged but never acted on. An allow-list hit allows the payment whatever the rules say.';

export const fraudRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { fraudService: fraud } = app.platform;
  app.platform.fraud.useLogger(app.log);
  // Rule and list changes made by other processes reach this one's cache by notification.
  app.addHook('onReady', async () => {
    await app.platform.fraud.listen(logListenRetries(app.log, 'fraud rule and list changes'));
  });

  app.get(
    '/v1/fraud/rules',
    {
      config: fraudRead,
      schema: {
        tags,
        summary: 'List fraud rules',
        description: `Every rule of the tenant mode, in the order they run. ${RULES_DESCRIPTION}`,
        response: { 200: allOf('FraudRule', '/v1/fraud/rules'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/fraud/rules',
      has_more: false,
      data: await fraud.listRules(tenantScope(request)),
    }),
  );

  app.post(
    '/v1/fraud/rules',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Create a fraud rule',
        description: `${RULES_DESCRIPTION} A bad expression is refused with 400 and the position of the error.`,
        body: {
          ...CreateRuleBody,
          examples: [
            {
              name: 'Review large foreign payments',
              expression: "amount > 50000 && ip.country != card.country && ip.country != ''",
              action: 'review',
              priority: 45,
            },
          ],
        },
        response: { 200: ref('FraudRule'), ...errors },
      },
    },
    async (request) => fraud.createRule(tenantScope(request), request.body, auditContext(request)),
  );

  // Fixed paths before the :id routes' siblings, so "backtest" is never read as a rule id.
  app.post(
    '/v1/fraud/rules/backtest',
    {
      config: fraudRead,
      schema: {
        tags,
        summary: 'Backtest a rule on history',
        description:
          "Replays an expression (or a stored rule's, by `rule` id) over the payments decided between `since` and " +
          '`until`, with the inputs stored at decision time and the lists as they are now: how many would have ' +
          'matched, their amount, and how many of them are labelled fraud (reported, or disputed as fraudulent), ' +
          'with precision and recall.',
        body: BacktestBody,
        response: { 200: ref('FraudBacktest'), ...errors },
      },
    },
    async (request) => fraud.backtest(tenantScope(request), request.body),
  );

  app.get(
    '/v1/fraud/rules/:id',
    retrieveRoute(fraudRead, { tags, summary: 'Retrieve a fraud rule' }, 'FraudRule'),
    async (request) => fraud.retrieveRule(tenantScope(request), request.params.id),
  );

  app.post(
    '/v1/fraud/rules/:id',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Update a fraud rule',
        description: 'Changes only the fields sent. Every API process uses the change from its next payment on.',
        params: IdParam,
        body: UpdateRuleBody,
        response: { 200: ref('FraudRule'), ...errors },
      },
    },
    async (request) => fraud.updateRule(tenantScope(request), request.params.id, request.body, auditContext(request)),
  );

  app.delete(
    '/v1/fraud/rules/:id',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Delete a fraud rule',
        params: IdParam,
        response: { 200: deleted('fraud_rule'), ...errors },
      },
    },
    async (request) => fraud.deleteRule(tenantScope(request), request.params.id, auditContext(request)),
  );

  app.get(
    '/v1/fraud/lists',
    {
      config: fraudRead,
      schema: {
        tags,
        summary: 'List fraud lists',
        description:
          'Block lists are read by rules (`lists.contains(name, value)`); an allow-list hit allows a payment whatever ' +
          'the rules say. Item types: card_fingerprint, card_bin, email, ip_address, country (matched against the IP ' +
          'country by allow-lists), customer.',
        response: { 200: allOf('FraudList', '/v1/fraud/lists'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/fraud/lists',
      has_more: false,
      data: await fraud.listLists(tenantScope(request)),
    }),
  );

  app.post(
    '/v1/fraud/lists',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Create a fraud list',
        body: { ...CreateListBody, examples: [{ name: 'vip_customers', item_type: 'customer', kind: 'allow' }] },
        response: { 200: ref('FraudList'), ...errors },
      },
    },
    async (request) => fraud.createList(tenantScope(request), request.body, auditContext(request)),
  );

  app.get(
    '/v1/fraud/lists/:id',
    retrieveRoute(fraudRead, { tags, summary: 'Retrieve a fraud list' }, 'FraudList'),
    async (request) => fraud.retrieveList(tenantScope(request), request.params.id),
  );

  app.delete(
    '/v1/fraud/lists/:id',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Delete a fraud list and its items',
        params: IdParam,
        response: { 200: deleted('fraud_list'), ...errors },
      },
    },
    async (request) => fraud.deleteList(tenantScope(request), request.params.id, auditContext(request)),
  );

  app.post(
    '/v1/fraud/lists/:id/items',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Add a value to a fraud list',
        description: 'Adding a value already on the list answers with the existing item.',
        params: IdParam,
        body: CreateListItemBody,
        response: { 200: ref('FraudListItem'), ...errors },
      },
    },
    async (request) =>
      fraud.addItem(tenantScope(request), request.params.id, request.body.value, auditContext(request)),
  );

  app.get(
    '/v1/fraud/lists/:id/items',
    {
      config: fraudRead,
      schema: {
        tags,
        summary: "List a fraud list's values",
        params: IdParam,
        querystring: StrictObject(ListQuery),
        response: { 200: listOf('FraudListItem', '/v1/fraud/lists/{id}/items'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/fraud/lists/{id}/items',
      ...(await fraud.listItems(tenantScope(request), request.params.id, request.query)),
    }),
  );

  app.delete(
    '/v1/fraud/lists/:id/items/:item',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Remove a value from a fraud list',
        params: ItemParams,
        response: { 200: deleted('fraud_list_item'), ...errors },
      },
    },
    async (request) =>
      fraud.deleteItem(tenantScope(request), request.params.id, request.params.item, auditContext(request)),
  );

  app.get(
    '/v1/reviews',
    listRoute(
      reviewsRead,
      {
        tags,
        summary: 'List reviews',
        description: 'Payments the fraud decision sent to review, newest first; filter with `status=open`.',
      },
      ReviewListQuery,
      'Review',
      '/v1/reviews',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/reviews',
      ...(await fraud.listReviews(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/reviews/:id',
    retrieveRoute(reviewsRead, { tags, summary: 'Retrieve a review' }, 'Review'),
    async (request) => fraud.retrieveReview(tenantScope(request), request.params.id),
  );

  for (const [verb, decision] of [
    ['approve', 'approved'],
    ['reject', 'rejected'],
  ] as const) {
    app.post(
      `/v1/reviews/:id/${verb}`,
      {
        config: reviewsWrite,
        schema: {
          tags,
          summary: verb === 'approve' ? 'Approve a review' : 'Reject a review',
          description:
            verb === 'approve'
              ? 'The payment goes on: an uncaptured (manual-capture) payment is captured. Records who, why and when.'
              : 'The payment is stopped: an uncaptured payment is canceled, a captured one refunded in full ' +
                '(reason `fraudulent`). Records who, why and when.',
          params: IdParam,
          body: CloseReviewBody,
          response: { 200: ref('Review'), ...errors },
        },
      },
      async (request) =>
        fraud.closeReview(
          tenantScope(request),
          request.params.id,
          decision,
          request.body?.reason ?? null,
          who(request.auth),
          auditContext(request),
        ),
    );
  }

  app.post(
    '/v1/payments/:id/report_fraud',
    {
      config: fraudWrite,
      schema: {
        tags,
        summary: 'Report a payment as fraud',
        description:
          "Labels the payment as fraud (backtests and the fraud rate count it); with `block_card`, also adds its card's " +
          'fingerprint to the `blocked_cards` list.',
        params: IdParam,
        body: ReportFraudBody,
        response: { 200: ref('Payment'), ...errors },
      },
    },
    async (request) =>
      fraud.reportFraud(tenantScope(request), request.params.id, who(request.auth), request.body?.block_card ?? false),
  );
};
