import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { CreatePayoutBody, PayoutListQuery } from './schemas.js';

const tags = ['Payouts'];

export const payoutRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { payouts } = app.platform;

  app.post(
    '/v1/payouts',
    {
      config: { auth: 'tenant', scope: 'payouts:write' },
      schema: {
        tags,
        summary: 'Pay out to your bank',
        description:
          'Moves `amount` from your available balance to `destination`, a verified bank account of yours (`ba_…`, see Bank accounts) in the payout currency, by default the default account of the currency; fails with `balance_insufficient` when the available balance is smaller, however many payouts run at once. The payout then moves `pending → in_transit → paid`, or `failed` (the funds return to available), with `payout.*` events.',
        body: { ...CreatePayoutBody, examples: [{ amount: 5000, currency: 'usd', method: 'standard' }] },
        response: { 200: ref('Payout'), ...errors },
      },
    },
    async (request) =>
      payouts.create(tenantScope(request), request.body, auditContext(request), request.idempotency?.key ?? null),
  );

  app.get(
    '/v1/payouts',
    listRoute(
      { auth: 'tenant', scope: 'payouts:read' },
      { tags, summary: 'List payouts' },
      PayoutListQuery,
      'Payout',
      '/v1/payouts',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/payouts',
      ...(await payouts.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/payouts/:id',
    retrieveRoute({ auth: 'tenant', scope: 'payouts:read' }, { tags, summary: 'Retrieve a payout' }, 'Payout'),
    async (request) => payouts.retrieve(tenantScope(request), request.params.id),
  );
};
