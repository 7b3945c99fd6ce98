import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { WebhookAmqpQueue, type WebhookJob } from '../src/workers/webhook-amqp.js';
import { HoldProxy } from './hold-proxy.js';
import { waitFor } from './process.js';
import { serviceUrl } from './services.js';

// A broker that stops reading while the socket stays open (a partition, a stalled proxy) never confirms and never
// closes the connection; heartbeats do not notice it, as the broker's keep arriving. A publish must fail within its
// bound instead of hanging the loop that awaits it, and the queue must come back by itself once the broker reads.
const amqpUrl = serviceUrl('AMQP_URL');
const prefix = `test.amqp_stall.${process.pid}`;
const schedule = [200];

describe.skipIf(!amqpUrl)('webhook queue and a broker that stops reading', () => {
  const proxies: HoldProxy[] = [];
  const queues: WebhookAmqpQueue[] = [];

  afterAll(async () => {
    for (const queue of queues) await queue.close();
    for (const proxy of proxies) await proxy.close();
    await WebhookAmqpQueue.deleteTopology(amqpUrl!, prefix, schedule);
  });

  it('fails a publish within the confirm bound, reconnects once the broker reads again, and publishes then', async () => {
    const url = new URL(amqpUrl!);
    const proxy = await HoldProxy.start({ host: url.hostname, port: Number(url.port || 5672) });
    proxies.push(proxy);
    const received: WebhookJob[] = [];
    const queue = new WebhookAmqpQueue(
      proxy.url(amqpUrl!),
      prefix,
      schedule,
      10,
      500,
      pino({ level: 'silent' }),
      (job, handle) => {
        received.push(job);
        queue.ack(handle);
      },
    );
    queues.push(queue);
    queue.start();
    await waitFor(() => queue.connected, 10_000, 'the queue connected');
    await queue.publish([{ id: 'whd_before', seq: 1 }]);
    await waitFor(() => received.some((job) => job.id === 'whd_before'), 10_000, 'the first job consumed');

    proxy.hold();
    await expect(queue.publish([{ id: 'whd_held', seq: 1 }])).rejects.toThrow(/did not confirm within 500 ms/);
    await waitFor(() => !queue.connected, 10_000, 'the stalled connection dropped');
    await expect(queue.delay([{ job: { id: 'whd_delayed', seq: 1 }, waitMs: 200 }])).rejects.toThrow(/not connected/);

    proxy.release();
    await waitFor(() => queue.connected, 30_000, 'the queue reconnected');
    await queue.publish([{ id: 'whd_after', seq: 2 }]);
    await waitFor(() => received.some((job) => job.id === 'whd_after'), 10_000, 'the job published after it consumed');
    // What was held never reached the broker.
    expect(received.map((job) => job.id)).not.toContain('whd_held');
  });
});
