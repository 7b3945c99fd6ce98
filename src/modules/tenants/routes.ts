import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import { SettlementScheduleSchema } from '../settlements/schedule.js';
import { ApiVersionSchema } from './service.js';
import { auditContext } from '../../http/audit-context.js';

const tags = ['Platform'];
const security = [{ platformKey: [] }];
const Processors = Type.Array(Type.String({ maxLength: 40 }), {
  minItems: 1,
  maxItems: 5,
  uniqueItems: true,
  description:
    'Routing: the processors to try in order, primary first; the next is tried when one fails with a processing error.',
  examples: [['sim_alpha', 'sim_beta']],
});
const CreateTenantBody = StrictObject({
  name: Type.String({ minLength: 1, maxLength: 200, examples: ['Acme Inc.'] }),
  processors: Type.Optional(Processors),
  settlement_schedule: Type.Optional(SettlementScheduleSchema),
  api_version: Type.Optional(ApiVersionSchema),
});
const UpdateTenantBody = StrictObject({
  api_version: Type.Optional(ApiVersionSchema),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  processors: Type.Optional(Processors),
  settlement_schedule: Type.Optional(SettlementScheduleSchema),
});

const TenantListQuery = StrictObject({
  limit: ListQuery.limit,
  starting_after: ListQuery.starting_after,
  ending_before: ListQuery.ending_before,
  status: Type.Optional(Type.String({ enum: ['active', 'suspended'], description: 'Only tenants in this status.' })),
  name_prefix: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'Only tenants whose name starts with this, ignoring case.',
      examples: ['acme'],
    }),
  ),
});
const SuspendBody = StrictObject({
  reason: Type.String({
    minLength: 1,
    maxLength: 500,
    description: 'Why, in words: kept on the tenant, in the audit log, and quoted in the 403 its keys get.',
    examples: ['Unpaid invoices since October'],
  }),
});

export const tenantRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { tenants } = app.platform;

  app.post(
    '/v1/tenants',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Create a tenant',
        description:
          'Creates an isolated tenant and returns its test and live secret keys. They are shown only in this response. ' +
          'The tenant is pinned to the latest API version unless `api_version` names another.',
        body: CreateTenantBody,
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      return tenants.create(
        body.name,
        auditContext(request),
        body.processors,
        body.settlement_schedule,
        body.api_version,
      );
    },
  );

  app.post(
    '/v1/tenants/:id',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Update a tenant',
        description:
          'Renames a tenant, changes its processor routing (payments created afterwards use the new order), its settlement schedule (applies to captures from then on) or its pinned API version (requests without a `PayForward-Version` header, and events, use it from then on).',
        params: IdParam,
        body: {
          ...UpdateTenantBody,
          examples: [
            { processors: ['sim_beta', 'sim_alpha'] },
            { settlement_schedule: { type: 'instant', delay_days: 0 } },
          ],
        },
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => tenants.update(request.params.id, request.body, auditContext(request)),
  );

  app.get(
    '/v1/tenants',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'List tenants',
        description:
          'Every tenant, newest first, a page at a time (`starting_after` / `ending_before` take a tenant id from a ' +
          'previous page). Filter by `status` or by the start of the name.',
        querystring: TenantListQuery,
        response: { 200: listOf('Tenant', '/v1/tenants'), ...errors },
      },
    },
    async (request) => {
      const page = await tenants.list(request.query);
      return { object: 'list' as const, url: '/v1/tenants' as const, has_more: page.hasMore, data: page.rows };
    },
  );

  app.post(
    '/v1/tenants/:id/suspend',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Suspend a tenant',
        description:
          'Refuses its secret, restricted and publishable keys, their access tokens and its dashboard sessions with ' +
          '403 `account_suspended` on every route (a session may still read and end itself: ' +
          'GET and DELETE /v1/sessions/current): at once on the process that answers, within a second on the ' +
          'others (at most `API_KEY_CACHE_TTL_MS` should a notification be lost). Requests already past ' +
          'authentication finish; settlements, payouts, webhook deliveries and other work on existing objects ' +
          'go on. Suspending a suspended tenant changes nothing.',
        params: IdParam,
        body: SuspendBody,
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => tenants.suspend(request.params.id, request.body.reason, auditContext(request)),
  );

  app.post(
    '/v1/tenants/:id/reactivate',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Reactivate a tenant',
        description:
          'Lifts a suspension: its keys and sessions work again, on every process within the same bound. ' +
          'Reactivating an active tenant changes nothing.',
        params: IdParam,
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => tenants.reactivate(request.params.id, auditContext(request)),
  );

  app.get(
    '/v1/tenants/:id',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Retrieve a tenant',
        params: IdParam,
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => tenants.retrieve(request.params.id),
  );
};
