import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { SettlementListQuery } from './schemas.js';

const tags = ['Balance'];

export const settlementRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
      ...(await settlements.list(tenantScope(request), request.query)),
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
    async (request) => settlements.retrieve(tenantScope(request), request.params.id),
  );
};
