import Fastify, { type FastifyInstance } from 'fastify';
import type { Metrics } from '../../http/metrics.js';

/**
 * /metrics on a listener of its own (METRICS_PORT, on METRICS_HOST: 127.0.0.1 unless told
 * otherwise), without a token: for a Prometheus that reaches the process over a private network
 * while the API port faces the internet. It serves nothing else.
 */
export async function startMetricsServer(metrics: Metrics, host: string, port: number): Promise<FastifyInstance> {
  const server = Fastify({ logger: false });
  server.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.collect();
  });
  await server.listen({ host, port });
  return server;
}
