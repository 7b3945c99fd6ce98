import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listRoute, retrieveRoute } from '../../http/route-schemas.js';
import { ListQuery, StrictObject } from '../../http/schemas.js';
import { NO_SCOPE } from '../../http/route-auth.js';
import { ApiError } from '../../http/errors.js';
import { EventTypeSchema, eventTypeList, isValidEventFilter } from './catalog.js';
import { API_VERSION_HEADER, LATEST_API_VERSION } from '../versions/versions.js';
import { StreamPosition } from './stream.js';

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

const EventStreamQuery = StrictObject({
  types: Type.Optional(
    Type.String({
      maxLength: 2000,
      description: 'Comma-separated event types, prefix wildcards such as `payment.*`, or `*` (the default).',
      examples: ['payment.*,refund.succeeded'],
    }),
  ),
});

function streamTypes(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const types = text.split(',').map((type) => type.trim());
  const unknown = types.find((type) => !isValidEventFilter(type));
  if (unknown !== undefined)
    throw ApiError.invalid(
      'invalid_event_type',
      `"${unknown.slice(0, 100)}" is not an event type, a prefix wildcard such as payment.* or *: see GET /v1/event_types.`,
      'types',
    );
  return types;
}

function streamPosition(header: string | string[] | undefined): StreamPosition | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header[0] : header;
  const position = StreamPosition.parse(text);
  if (!position)
    throw ApiError.invalid(
      'invalid_last_event_id',
      'Last-Event-ID must be the id of an event this stream sent, as it was sent.',
      'Last-Event-ID',
    );
  return position;
}

export const eventRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { events, eventFeed } = app.platform;
  const eventTypes = eventTypeList();
  app.addHook('onReady', async () => eventFeed.start());
  // Streams never end by themselves: at shutdown they are ended, so that closing the server does not wait on them.
  app.addHook('preClose', async () =>
    eventFeed.reset(
      new ApiError(
        'api_error',
        'shutting_down',
        'This server is shutting down; reconnect with Last-Event-ID.',
        null,
        503,
      ),
    ),
  );

  app.get(
    '/v1/events/stream',
    {
      config: { auth: 'tenant', scope: 'events:read' },
      schema: {
        tags,
        summary: 'Stream events live',
        description:
          "Server-sent events: each of the tenant's events (in this mode) as it commits, with the same payload as " +
          "`GET /v1/events/{id}`. Each message's `id` is a position: reconnect with it in `Last-Event-ID` and the " +
          'stream resumes with exactly the events you have not had. A comment line every 15 s keeps the connection ' +
          'open; an `event: stream_error` message precedes an end caused by the server (reconnect with Last-Event-ID).',
        querystring: EventStreamQuery,
        produces: ['text/event-stream'],
        response: { 200: { description: 'A text/event-stream of events.', type: 'string' }, ...errors },
      },
    },
    async (request, reply) => {
      const types = streamTypes(request.query.types);
      const from = streamPosition(request.headers['last-event-id']);
      const apiVersion = request.apiVersion ?? LATEST_API_VERSION;
      await eventFeed.open(tenantScope(request), types, apiVersion, from, reply.raw, () => {
        reply.hijack();
        reply.raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
          'request-id': request.id,
          [API_VERSION_HEADER]: apiVersion,
          // A stream's connection ends with it: left open for keep-alive, it would hold a shutdown up.
          connection: 'close',
        });
        reply.raw.write(': stream open\n\n');
      });
    },
  );

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
    listRoute(
      { auth: 'tenant', scope: 'events:read' },
      { tags, summary: 'List events' },
      EventListQuery,
      'Event',
      '/v1/events',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/events',
      ...(await events.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/events/:id',
    retrieveRoute({ auth: 'tenant', scope: 'events:read' }, { tags, summary: 'Retrieve an event' }, 'Event'),
    async (request) => events.retrieve(tenantScope(request), request.params.id),
  );
};
