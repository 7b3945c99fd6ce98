import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { errors, ref } from '../../http/route-schemas.js';
import { IdParam, StrictObject } from '../../http/schemas.js';

const tags = ['Platform'];
const security = [{ platformKey: [] }];
const CreateTenantBody = StrictObject({
  name: Type.String({ minLength: 1, maxLength: 200, examples: ['Acme Inc.'] }),
  processors: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 5, uniqueItems: true })),
});

export async function tenantRoutes(app: FastifyInstance) {
  const { tenants } = app.platform;

  app.post(
    '/v1/tenants',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        security,
        summary: 'Create a tenant',
        description: 'Creates an isolated tenant and returns its test and live secret keys. They are shown only in this response.',
        body: CreateTenantBody,
        response: { 200: ref('Tenant'), ...errors },
      },
    },
    async (request) => {
      const body = request.body as { name: string; processors?: string[] };
      return tenants.create(body.name, body.processors);
    },
  );

  app.get(
    '/v1/tenants/:id',
    { config: { auth: 'platform' }, schema: { tags, security, summary: 'Retrieve a tenant', params: IdParam, response: { 200: ref('Tenant'), ...errors } } },
    async (request) => tenants.retrieve((request.params as { id: string }).id),
  );
}
