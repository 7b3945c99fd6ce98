import { randomBytes } from 'node:crypto';
import { WebhookAmqpQueue } from '../src/workers/webhook-amqp.js';
import { serviceUrl } from './services.js';

export interface WebhookTransport {
  name: 'postgres' | 'amqp';
  label: string;
  /** Settings for the app and its workers. */
  env: Record<string, string>;
  /** Deletes what the transport left behind (RabbitMQ queues of the test's own prefix). */
  cleanup(): Promise<void>;
}

/**
 * The two ways delivery jobs travel. On the shared RabbitMQ each test file gets exchanges and queues under a prefix
 * of its own: a consumer never sees another file's jobs (it would drop them as unknown to its database). Without
 * AMQP_URL (a bare machine) only the PostgreSQL queue runs; under CI that fails instead (test/services.ts).
 */
export function webhookTransports(file: string, retrySchedule = '0,0.2'): WebhookTransport[] {
  const prefix = `test.${file}.${randomBytes(4).toString('hex')}`;
  const amqpUrl = serviceUrl('AMQP_URL');
  const postgres: WebhookTransport = {
    name: 'postgres',
    label: 'PostgreSQL queue',
    env: { WEBHOOK_TRANSPORT: 'postgres' },
    cleanup: async () => {},
  };
  if (!amqpUrl) return [postgres];
  return [
    postgres,
    {
      name: 'amqp',
      label: 'RabbitMQ',
      env: { AMQP_URL: amqpUrl, WEBHOOK_TRANSPORT: 'amqp', WEBHOOK_AMQP_PREFIX: prefix },
      cleanup: () =>
        WebhookAmqpQueue.deleteTopology(
          amqpUrl,
          prefix,
          retrySchedule.split(',').map((s) => Number(s) * 1000),
        ).catch(() => {}),
    },
  ];
}
