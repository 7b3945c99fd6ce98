import { randomBytes } from 'node:crypto';
import { WebhookAmqpQueue } from '../src/workers/webhook-amqp.js';

export const TEST_AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

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
 * of its own: a consumer never sees another file's jobs (it would drop them as unknown to its database).
 */
export function webhookTransports(file: string, retrySchedule = '0,0.2'): WebhookTransport[] {
  const prefix = `test.${file}.${randomBytes(4).toString('hex')}`;
  return [
    { name: 'postgres', label: 'PostgreSQL queue', env: { WEBHOOK_TRANSPORT: 'postgres' }, cleanup: async () => {} },
    {
      name: 'amqp',
      label: 'RabbitMQ',
      env: { AMQP_URL: TEST_AMQP_URL, WEBHOOK_TRANSPORT: 'amqp', WEBHOOK_AMQP_PREFIX: prefix },
      cleanup: () =>
        WebhookAmqpQueue.deleteTopology(
          TEST_AMQP_URL,
          prefix,
          retrySchedule.split(',').map((s) => Number(s) * 1000),
        ).catch(() => {}),
    },
  ];
}
