import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import {
  BankAccountListQuery,
  CreateBankAccountBody,
  DeletedBankAccountSchema,
  UpdateBankAccountBody,
  VerifyBankAccountBody,
} from './schemas.js';

const tags = ['Bank accounts'];
const read = { auth: 'tenant', scope: 'bank_accounts:read' } as const;
// Registering where money goes is its own permission: a key that may create payouts must not also
// be able to add an account of its choosing to send them to.
const write = { auth: 'tenant', scope: 'bank_accounts:write' } as const;

export const bankAccountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { bankAccounts } = app.platform;

  app.post(
    '/v1/bank_accounts',
    {
      config: write,
      schema: {
        tags,
        summary: 'Register a bank account',
        description:
          'Registers a bank account for payouts, in status `new`. The account number is encrypted in the vault and shown only as `last4`. Two micro-deposits are sent to it (test mode: 32 and 45 cents): confirm them with `POST /v1/bank_accounts/{id}/verify` before paying out to it. The first account of a currency becomes its default.',
        body: {
          ...CreateBankAccountBody,
          examples: [
            {
              account_number: '000123456789',
              routing_number: '110000000',
              country: 'US',
              currency: 'usd',
              account_holder_name: 'Jenny Rosen',
            },
          ],
        },
        response: { 200: ref('BankAccount'), ...errors },
      },
    },
    async (request) => bankAccounts.create(tenantScope(request), request.body, auditContext(request)),
  );

  app.get(
    '/v1/bank_accounts',
    listRoute(read, { tags, summary: 'List bank accounts' }, BankAccountListQuery, 'BankAccount', '/v1/bank_accounts'),
    async (request) => ({
      object: 'list',
      url: '/v1/bank_accounts',
      ...(await bankAccounts.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/bank_accounts/:id',
    retrieveRoute(read, { tags, summary: 'Retrieve a bank account' }, 'BankAccount'),
    async (request) => bankAccounts.retrieve(tenantScope(request), request.params.id),
  );

  app.post(
    '/v1/bank_accounts/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Update a bank account',
        description: 'Makes it the default account of its currency (`default_for_currency: true`) or merges metadata.',
        params: IdParam,
        body: UpdateBankAccountBody,
        response: { 200: ref('BankAccount'), ...errors },
      },
    },
    async (request) =>
      bankAccounts.update(tenantScope(request), request.params.id, request.body ?? null, auditContext(request)),
  );

  app.delete(
    '/v1/bank_accounts/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a bank account',
        description:
          'No further payouts go to it; payouts already on their way still arrive. Deleting the default account leaves the currency without one: automatic payouts then keep the funds available.',
        params: IdParam,
        response: { 200: DeletedBankAccountSchema, ...errors },
      },
    },
    async (request) => bankAccounts.remove(tenantScope(request), request.params.id, auditContext(request)),
  );

  app.post(
    '/v1/bank_accounts/:id/verify',
    {
      config: write,
      schema: {
        tags,
        summary: 'Verify a bank account',
        description:
          'Confirms the two micro-deposits, in cents (test mode: `[32, 45]`). A wrong pair is `400 bank_account_verification_failed`; after 3 wrong pairs the account becomes `verification_failed` for good.',
        params: IdParam,
        body: VerifyBankAccountBody,
        response: { 200: ref('BankAccount'), ...errors },
      },
    },
    async (request) =>
      bankAccounts.verify(tenantScope(request), request.params.id, request.body.amounts, auditContext(request)),
  );
};
