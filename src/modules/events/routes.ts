import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { tenantScope } from '../../app.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';

const tags = ['Events'];
const EventListQuery = StrictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ maxLength: 100, description: 'An event type, or a prefix such as `payment.*`.' })),
  object_id: Type.Optional(Type.String({ maxLength: 64 })),
});

export async function eventRoutes(app: FastifyInstance) {
  const { events } = app.platform;

  app.get(
    '/v1/events',
    {
      config: { auth: 'tenant', scope: 'events:read' },
      schema: {
        tags,
        summary: 'List events',
        querystring: EventListQuery,
        response: { 200: listOf('Event', '/v1/events'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/events',
      ...(await events.list(tenantScope(request), request.query as never)),
    }),
  );

  app.get(
    '/v1/events/:id',
    {
      config: { auth: 'tenant', scope: 'events:read' },
      schema: { tags, summary: 'Retrieve an event', params: IdParam, response: { 200: ref('Event'), ...errors } },
    },
    async (request) => events.retrieve(tenantScope(request), (request.params as { id: string }).id),
  );
}
