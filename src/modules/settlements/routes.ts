import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { listRoute, retrieveRoute } from '../../http/route-schemas.js';
import { SettlementListQuery } from './schemas.js';

const tags = ['Balance'];

export const settlementRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { settlements } = app.platform;

  app.get(
    '/v1/settlements',
    listRoute(
      { auth: 'tenant', scope: 'balance:read' },
      {
        tags,
        summary: 'List settlements',
        description:
          'Each run of the settlement job that made pending funds available, per currency: how many transactions, gross, fees, refunds, disputes and net.',
      },
      SettlementListQuery,
      'Settlement',
      '/v1/settlements',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/settlements',
      ...(await settlements.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/settlements/:id',
    retrieveRoute({ auth: 'tenant', scope: 'balance:read' }, { tags, summary: 'Retrieve a settlement' }, 'Settlement'),
    async (request) => settlements.retrieve(tenantScope(request), request.params.id),
  );
};
