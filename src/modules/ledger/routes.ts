import type { FastifyInstance } from 'fastify';
import { tenantScope } from '../../app.js';
import { errors } from '../../http/route-schemas.js';
import { BalanceSchema } from './schemas.js';

export async function ledgerRoutes(app: FastifyInstance) {
  const { ledger } = app.platform;

  app.get(
    '/v1/balance',
    {
      config: { scope: 'balance:read' },
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
}
