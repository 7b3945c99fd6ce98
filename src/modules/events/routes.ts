import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import { NO_SCOPE } from '../../http/route-auth.js';
import { EventTypeSchema, eventTypeList } from './catalog.js';

const tags = ['Events'];
const EventListQuery = StrictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ maxLength: 100, description: 'An event type, or a prefix such as `payment.*`.' })),
  object_id: Type.Optional(Type.String({ maxLength: 64 })),
});

const EventTypeList = Type.Object({
  object: Type.Literal('list'),
  url: Type.Literal('/v1/event_types'),
  has_more: Type.Literal(false),
  data: Type.Array(EventTypeSchema),
});

export const eventRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { events } = app.platform;
  const eventTypes = eventTypeList();

  // The catalog holds no tenant data: any of the tenant's keys may read it.
  app.get(
    '/v1/event_types',
    {
      config: { auth: 'tenant', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'List event types',
        description:
          'Every event type the platform emits, with what it means and an example event. Webhook endpoints and the ' +
          'event stream subscribe to these names, or to `*` and prefix wildcards such as `payment.*`.',
        querystring: StrictObject({}),
        response: { 200: EventTypeList, ...errors },
      },
    },
    async () => ({
      object: 'list' as const,
      url: '/v1/event_types' as const,
      has_more: false as const,
      data: eventTypes,
    }),
  );

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
      ...(await events.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/events/:id',
    {
      config: { auth: 'tenant', scope: 'events:read' },
      schema: { tags, summary: 'Retrieve an event', params: IdParam, response: { 200: ref('Event'), ...errors } },
    },
    async (request) => events.retrieve(tenantScope(request), request.params.id),
  );
};
