import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { listRoute, retrieveRoute } from '../../http/route-schemas.js';
import { RequestLogListQuery } from './schemas.js';

const tags = ['Request logs'];
const read = { auth: 'tenant', scope: 'request_logs:read' } as const;

export const requestLogRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { requestLogs } = app.platform;

  app.get(
    '/v1/request_logs',
    listRoute(
      read,
      {
        tags,
        summary: 'List request logs',
        description:
          "The requests made with this mode's keys over the last 30 days, newest first: method, path, status, key, " +
          'Idempotency-Key, error code and latency. Bodies, headers and query strings are never kept. A request ' +
          'appears within about a second of its answer.',
      },
      RequestLogListQuery,
      'RequestLog',
      '/v1/request_logs',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/request_logs',
      ...(await requestLogs.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/request_logs/:id',
    retrieveRoute(
      read,
      {
        tags,
        summary: 'Retrieve a request log',
        description: 'By request id: the `request-id` header of any response, or `error.request_id` of an error.',
      },
      'RequestLog',
    ),
    async (request) => requestLogs.retrieve(tenantScope(request), request.params.id),
  );
};
