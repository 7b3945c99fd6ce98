import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, ref } from '../../http/route-schemas.js';
import { IdParam, StrictObject } from '../../http/schemas.js';
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
