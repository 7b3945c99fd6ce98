import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { CreateRefundBody, RefundListQuery, RefundRetrieveQuery } from './schemas.js';

const tags = ['Refunds'];
const EXPAND_DOC =
  'Expandable with `expand[]` (on the list, `data.`-prefixed): `payment` and `balance_transaction`, and nested up to ' +
  '4 levels, e.g. `expand[]=payment.customer`.';

export const refundRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { refunds, expander } = app.platform;

  app.post(
    '/v1/refunds',
    {
      config: { auth: 'tenant', scope: 'refunds:write' },
      schema: {
        tags,
        summary: 'Refund a payment',
        description: 'Full (no `amount`) or partial; several refunds per payment, never more than was captured.',
        body: {
          ...CreateRefundBody,
          examples: [{ payment: 'pay_01jd7s0k2m3n4p5q6r7s8t9v0w', amount: 500, reason: 'requested_by_customer' }],
        },
        response: { 200: ref('Refund'), ...errors },
      },
    },
    async (request) =>
      refunds.create(tenantScope(request), request.body, auditContext(request), request.idempotency?.key ?? null),
  );

  app.get(
    '/v1/refunds',
    {
      config: { auth: 'tenant', scope: 'refunds:read' },
      schema: {
        tags,
        summary: 'List refunds',
        description: EXPAND_DOC,
        querystring: RefundListQuery,
        response: { 200: listOf('Refund', '/v1/refunds'), ...errors },
      },
    },
    async (request) =>
      expander.list(tenantScope(request), 'refund', request.query['expand[]'], async () => ({
        object: 'list',
        url: '/v1/refunds',
        ...(await refunds.list(tenantScope(request), request.query)),
      })),
  );

  app.get(
    '/v1/refunds/:id',
    {
      config: { auth: 'tenant', scope: 'refunds:read' },
      schema: {
        tags,
        summary: 'Retrieve a refund',
        description: EXPAND_DOC,
        params: IdParam,
        querystring: RefundRetrieveQuery,
        response: { 200: ref('Refund'), ...errors },
      },
    },
    async (request) =>
      expander.one(tenantScope(request), 'refund', request.query['expand[]'], () =>
        refunds.retrieve(tenantScope(request), request.params.id),
      ),
  );
};
