import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { WebhookAmqpQueue, type WebhookJob } from '../src/workers/webhook-amqp.js';
import { HoldProxy } from './hold-proxy.js';
import { waitFor } from './process.js';
import { serviceUrl } from './services.js';

// A broker that stops reading while the socket stays open (a partition, a stalled proxy) never confirms and never
// answers; the client's heartbeat check does not notice, as the broker's heartbeats keep arriving. A publish must fail
// within its bound instead of hanging the loop that awaits it, and the queue must come back by itself once the broker
// reads again; a worker shutting down must not wait on it either.
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

  /** A queue connected through a proxy of its own, confirms bounded at 500 ms; `received` gathers its jobs. */
  async function queueThroughProxy(received: WebhookJob[] = []) {
    const url = new URL(amqpUrl!);
    const proxy = await HoldProxy.start({ host: url.hostname, port: Number(url.port || 5672) });
    proxies.push(proxy);
    const log = pino({ level: 'silent' });
    const queue = new WebhookAmqpQueue(proxy.url(amqpUrl!), prefix, schedule, 10, 500, log, (job, handle) => {
      received.push(job);
      queue.ack(handle);
    });
    queues.push(queue);
    queue.start();
    await waitFor(() => queue.connected, 10_000, 'the queue connected');
    return { proxy, queue };
  }

  it('fails a publish within the confirm bound, reconnects once the broker reads again, and publishes then', async () => {
    const received: WebhookJob[] = [];
    const { proxy, queue } = await queueThroughProxy(received);
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

  it('stops consuming and closes within the bound while the broker does not read (a worker shutting down)', async () => {
    const { proxy, queue } = await queueThroughProxy();
    proxy.hold();
    // Each waits for the broker's answer, which never comes: without the bound neither would return.
    await queue.stopConsuming();
    await queue.close();
    expect(queue.connected).toBe(false);
  });
});
