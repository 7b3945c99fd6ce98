import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { CreateRefundBody, RefundListQuery } from './schemas.js';

const tags = ['Refunds'];

export const refundRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { refunds } = app.platform;

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
        querystring: RefundListQuery,
        response: { 200: listOf('Refund', '/v1/refunds'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/refunds',
      ...(await refunds.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/refunds/:id',
    {
      config: { auth: 'tenant', scope: 'refunds:read' },
      schema: { tags, summary: 'Retrieve a refund', params: IdParam, response: { 200: ref('Refund'), ...errors } },
    },
    async (request) => refunds.retrieve(tenantScope(request), request.params.id),
  );
};
