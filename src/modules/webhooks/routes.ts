import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { auditContext } from '../../http/audit-context.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import {
  CreateWebhookEndpointBody,
  DeletedWebhookEndpointSchema,
  DeliveryListQuery,
  ReplayBody,
  ReplaySchema,
  RotateSecretBody,
  UpdateWebhookEndpointBody,
  WebhookEndpointListQuery,
} from './schemas.js';

const tags = ['Webhooks'];
const read = { auth: 'tenant', scope: 'webhook_endpoints:read' } as const;
const write = { auth: 'tenant', scope: 'webhook_endpoints:write' } as const;

export const webhookRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { webhooks } = app.platform;

  app.post(
    '/v1/webhook_endpoints',
    {
      config: write,
      schema: {
        tags,
        summary: 'Create a webhook endpoint',
        description:
          'Registers a URL to receive the events named in `enabled_events`, signed per Standard Webhooks. The answer carries the signing `secret` (`whsec_…`), shown only here and on rotation.',
        body: CreateWebhookEndpointBody,
        response: { 200: ref('WebhookEndpoint'), ...errors },
      },
    },
    async (request) => webhooks.create(tenantScope(request), request.body, auditContext(request)),
  );

  app.get(
    '/v1/webhook_endpoints',
    {
      config: read,
      schema: {
        tags,
        summary: 'List webhook endpoints',
        querystring: WebhookEndpointListQuery,
        response: { 200: listOf('WebhookEndpoint', '/v1/webhook_endpoints'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/webhook_endpoints',
      ...(await webhooks.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/webhook_endpoints/:id',
    {
      config: read,
      schema: {
        tags,
        summary: 'Retrieve a webhook endpoint',
        params: IdParam,
        response: { 200: ref('WebhookEndpoint'), ...errors },
      },
    },
    async (request) => webhooks.retrieve(tenantScope(request), request.params.id),
  );

  const update = {
    config: write,
    schema: {
      tags,
      summary: 'Update a webhook endpoint',
      description: 'Changes the url, events, description or metadata; `disabled` stops or resumes deliveries.',
      params: IdParam,
      body: UpdateWebhookEndpointBody,
      response: { 200: ref('WebhookEndpoint'), ...errors },
    },
  };
  app.patch('/v1/webhook_endpoints/:id', update, async (request) =>
    webhooks.update(tenantScope(request), request.params.id, request.body ?? null, auditContext(request)),
  );
  app.post('/v1/webhook_endpoints/:id', update, async (request) =>
    webhooks.update(tenantScope(request), request.params.id, request.body ?? null, auditContext(request)),
  );

  app.delete(
    '/v1/webhook_endpoints/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a webhook endpoint',
        description: 'Nothing more is sent to it; deliveries still pending are given up. Its delivery log stays.',
        params: IdParam,
        response: { 200: DeletedWebhookEndpointSchema, ...errors },
      },
    },
    async (request) => webhooks.remove(tenantScope(request), request.params.id, auditContext(request)),
  );

  app.post(
    '/v1/webhook_endpoints/:id/rotate_secret',
    {
      config: write,
      schema: {
        tags,
        summary: 'Rotate the signing secret',
        description:
          'Issues a new secret (in the answer, only here). Until `expires_in` seconds have passed (default 24 hours) deliveries carry a signature with the old secret too, so receivers can switch at their pace.',
        params: IdParam,
        body: RotateSecretBody,
        response: { 200: ref('WebhookEndpoint'), ...errors },
      },
    },
    async (request) =>
      webhooks.rotateSecret(tenantScope(request), request.params.id, auditContext(request), request.body?.expires_in),
  );

  app.post(
    '/v1/webhook_endpoints/:id/test',
    {
      config: write,
      schema: {
        tags,
        summary: 'Send a test event',
        description: 'Sends a `webhook_endpoint.test` event to this endpoint only; the answer is its delivery.',
        params: IdParam,
        response: { 200: ref('WebhookDelivery'), ...errors },
      },
    },
    async (request) => webhooks.sendTest(tenantScope(request), request.params.id, request.id),
  );

  app.get(
    '/v1/webhook_endpoints/:id/deliveries',
    {
      config: read,
      schema: {
        tags,
        summary: "List an endpoint's deliveries",
        description:
          'Newest event first, each with every attempt: time, status code, latency, the first 1 KB of the answer, error.',
        params: IdParam,
        querystring: DeliveryListQuery,
        response: { 200: listOf('WebhookDelivery', '/v1/webhook_endpoints/{id}/deliveries'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/webhook_endpoints/{id}/deliveries',
      ...(await webhooks.endpointDeliveries(tenantScope(request), request.params.id, request.query)),
    }),
  );

  app.post(
    '/v1/webhook_endpoints/:id/replay',
    {
      config: write,
      schema: {
        tags,
        summary: 'Replay events to an endpoint',
        description:
          'Sends the matching events created in [`since`, `until`) again, including those from before the endpoint subscribed; `only_failed` limits it to deliveries that gave up.',
        params: IdParam,
        body: ReplayBody,
        response: { 200: ReplaySchema, ...errors },
      },
    },
    async (request) => webhooks.replay(tenantScope(request), request.params.id, request.body),
  );

  app.get(
    '/v1/events/:id/deliveries',
    {
      config: read,
      schema: {
        tags,
        summary: "List an event's deliveries",
        params: IdParam,
        response: { 200: listOf('WebhookDelivery', '/v1/events/{id}/deliveries'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/events/{id}/deliveries',
      ...(await webhooks.eventDeliveries(tenantScope(request), request.params.id)),
    }),
  );

  app.post(
    '/v1/events/:id/redeliver',
    {
      config: write,
      schema: {
        tags,
        summary: 'Redeliver an event',
        description:
          'Sends the event again, as a new series of attempts, to every enabled endpoint it was delivered to.',
        params: IdParam,
        response: { 200: listOf('WebhookDelivery', '/v1/events/{id}/deliveries'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/events/{id}/deliveries',
      ...(await webhooks.redeliver(tenantScope(request), request.params.id)),
    }),
  );
};
