import type { FastifyInstance } from 'fastify';
import { tenantScope } from '../../app.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { BalanceSchema, BalanceTransactionListQuery } from './schemas.js';

export async function ledgerRoutes(app: FastifyInstance) {
  const { ledger } = app.platform;

  app.get(
    '/v1/balance',
    {
      config: { auth: 'tenant', scope: 'balance:read' },
      schema: {
        tags: ['Balance'],
        summary: 'Retrieve your balance',
        description:
          'Funds per currency in this mode: `available` (can be paid out), `pending` (captured, not yet settled) and `reserved` (withheld). Read from running balances kept in the same transaction as the ledger entries.',
        response: { 200: BalanceSchema, ...errors },
      },
    },
    async (request) => ledger.balances(tenantScope(request)),
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
      ...(await ledger.listBalanceTransactions(tenantScope(request), request.query as never)),
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
    async (request) => ledger.retrieveBalanceTransaction(tenantScope(request), (request.params as { id: string }).id),
  );
}
