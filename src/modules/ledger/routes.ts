import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { BalanceQuery, BalanceSchema, BalanceTransactionListQuery } from './schemas.js';

export const ledgerRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { ledger, balanceHistory } = app.platform;

  app.get(
    '/v1/balance',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags: ['Balance'],
        summary: 'Retrieve your balance',
        description:
          'Funds per currency in this mode: `available` (can be paid out), `pending` (captured, not yet settled) and `reserved` (withheld). Read from running balances kept in the same transaction as the ledger entries. With `at`, the balance as it stood at that past instant: every ledger movement whose balance transaction was `created` at or before it, read from the nearest hourly snapshot plus the movements between.',
        querystring: BalanceQuery,
        response: { 200: BalanceSchema, ...errors },
      },
    },
    async (request) =>
      request.query.at === undefined
        ? ledger.balances(tenantScope(request))
        : balanceHistory.at(tenantScope(request), request.query.at),
  );

  app.get(
    '/v1/balance_transactions',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags: ['Balance'],
        summary: 'List balance transactions',
        description:
          'Every change to your pending or available funds, newest first: charges, refunds, disputes, payouts. Each shows the gross amount, each fee and why, the net, whether it is pending or available and when, and which settlement and automatic payout carried it.',
        querystring: BalanceTransactionListQuery,
        response: { 200: listOf('BalanceTransaction', '/v1/balance_transactions'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/balance_transactions',
      ...(await ledger.listBalanceTransactions(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/balance_transactions/:id',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags: ['Balance'],
        summary: 'Retrieve a balance transaction',
        params: IdParam,
        response: { 200: ref('BalanceTransaction'), ...errors },
      },
    },
    async (request) => ledger.retrieveBalanceTransaction(tenantScope(request), request.params.id),
  );
};
