import type { FastifyInstance } from 'fastify';
import { tenantScope } from '../../app.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { SettlementListQuery } from './schemas.js';

const tags = ['Balance'];

export async function settlementRoutes(app: FastifyInstance) {
  const { settlements } = app.platform;

  app.get(
    '/v1/settlements',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags,
        summary: 'List settlements',
        description:
          'Each run of the settlement job that made pending funds available, per currency: how many transactions, gross, fees, refunds, disputes and net.',
        querystring: SettlementListQuery,
        response: { 200: listOf('Settlement', '/v1/settlements'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/settlements',
      ...(await settlements.list(tenantScope(request), request.query as never)),
    }),
  );

  app.get(
    '/v1/settlements/:id',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags,
        summary: 'Retrieve a settlement',
        params: IdParam,
        response: { 200: ref('Settlement'), ...errors },
      },
    },
    async (request) => settlements.retrieve(tenantScope(request), (request.params as { id: string }).id),
  );
}
