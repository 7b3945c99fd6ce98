import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { sql, metrics, readRouter } = app.platform;
  const hidden = { tags: ['Health'] };

  app.get(
    '/health',
    { config: { auth: 'none' }, schema: { ...hidden, summary: 'Liveness', security: [] } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/ready',
    { config: { auth: 'none' }, schema: { ...hidden, summary: 'Readiness: the database answers', security: [] } },
    async (_request, reply) => {
      try {
        await sql`SELECT 1`;
        // A replica that is away or behind does not make the process unready: its reads go to the primary.
        if (!readRouter) return { status: 'ready', database: 'ok' };
        const { state, lag_ms } = readRouter.status();
        return { status: 'ready', database: 'ok', replica: { state, lag_ms } };
      } catch {
        return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
      }
    },
  );

  app.get(
    '/metrics',
    {
      config: { auth: 'metrics' },
      schema: {
        ...hidden,
        summary: 'Prometheus metrics',
        description: 'Needs `Authorization: Bearer <METRICS_TOKEN>`; or scrape METRICS_PORT, which needs no token.',
        security: [],
      },
    },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.collect();
    },
  );
};
