import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENTS_EXCHANGE, OutboxRelay } from '../src/workers/outbox-relay.js';
import { HoldProxy } from './hold-proxy.js';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';
import { waitFor } from './process.js';
import { serviceUrl } from './services.js';

// The relay runs against the real broker: a temporary queue bound to the events exchange with
// '#' sees every event the relay publishes. Without AMQP_URL (a bare machine) the suite is skipped;
// under CI=true serviceUrl fails instead.
const amqpUrl = serviceUrl('AMQP_URL');

interface Received {
  routingKey: string;
  messageId: string;
  contentType?: string;
  headers: Record<string, unknown>;
  body: {
    id: string;
    object: string;
    type: string;
    tenant: string;
    livemode: boolean;
    created: number;
    data: { object: { id: string } };
  };
}

let t: TestApp;
let tenant: TestTenant;
let connection: amqp.ChannelModel;
let channel: amqp.Channel;
let queue: string;
const relays: OutboxRelay[] = [];
/** Every message taken from the queue so far, in order. */
const received: Received[] = [];

beforeAll(async () => {
  if (!amqpUrl) return;
  t = await bootApp();
  tenant = await createTenant(t.app, 'Outbox tenant');
  connection = await amqp.connect(amqpUrl);
  channel = await connection.createChannel();
  await channel.assertExchange(EVENTS_EXCHANGE, 'topic', { durable: true });
  ({ queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false }));
  await channel.bindQueue(queue, EVENTS_EXCHANGE, '#');
  // As a worker's first pass does: registers the relay, so that every event from now on is queued for it.
  await newRelay().relayOnce();
});

afterAll(async () => {
  for (const relay of relays) await relay.close();
  await channel?.close().catch(() => {});
  await connection?.close().catch(() => {});
  await t?.close();
});

function newRelay() {
  const relay = new OutboxRelay(t.platform.workerSql, amqpUrl!);
  relays.push(relay);
  return relay;
}

/** Moves every message now in the queue into `received`. */
async function drain() {
  for (;;) {
    const message = await channel.get(queue, { noAck: true });
    if (!message) return;
    received.push({
      routingKey: message.fields.routingKey,
      messageId: message.properties.messageId,
      contentType: message.properties.contentType,
      headers: message.properties.headers ?? {},
      body: JSON.parse(message.content.toString('utf8')),
    });
  }
}

/** Runs relay passes until the relay's queue holds nothing of our tenant (other suites write events too). */
async function relayAll(relay: OutboxRelay) {
  await waitFor(
    async () => {
      await relay.relayOnce();
      return (await tenantEvents()).every((event) => !event.queued);
    },
    20_000,
    'the outbox to be relayed',
  );
}

async function tenantEvents() {
  return t.admin<{ id: string; type: string; object_id: string; queued: boolean }[]>`
    SELECT id, type, object_id, EXISTS (SELECT 1 FROM event_relay_queue q WHERE q.event_id = e.id) AS queued
    FROM events e WHERE tenant_id = ${tenant.id} ORDER BY id`;
}

const mine = () => received.filter((m) => m.body.tenant === tenant.id);

/** Once the payment's events reached the queue: the routing keys of its messages, in order. */
async function publishedFor(paymentId: string) {
  const ofPayment = () => mine().filter((m) => m.body.data.object.id === paymentId);
  await waitFor(
    async () => {
      await drain();
      return ofPayment().length > 0;
    },
    10_000,
    'the event to reach the queue',
  );
  return ofPayment().map((m) => m.routingKey);
}

async function createPayments() {
  const ids: string[] = [];
  for (const [number, extra] of [
    [TEST_CARDS.visa, {}],
    [TEST_CARDS.visa, { capture_method: 'manual' }],
    [TEST_CARDS.declined, {}],
    [TEST_CARDS.threeDSecure, {}],
  ] as const) {
    const response = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 1234,
      currency: 'usd',
      payment_method: card(number),
      confirm: true,
      ...extra,
    });
    expect([200, 402]).toContain(response.statusCode);
    ids.push(response.statusCode === 200 ? response.json().id : response.json().error.payment.id);
  }
  const refunded = await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: ids[0], amount: 200 });
  expect(refunded.statusCode, refunded.body).toBe(200);
  return ids;
}

describe.skipIf(!amqpUrl)('OutboxRelay', () => {
  it('publishes every committed event exactly once, with the event id as messageId, and dequeues it', async () => {
    const paymentIds = await createPayments();
    const before = await tenantEvents();
    // created + succeeded, created + requires_capture, created + failed, created + requires_action,
    // refund created + succeeded
    expect(before.length).toBe(10);
    // Queued by the transactions that wrote them.
    expect(before.every((e) => e.queued)).toBe(true);
    expect(new Set(before.map((e) => e.object_id))).toEqual(
      new Set([...paymentIds, before.find((e) => e.type === 'refund.created')!.object_id]),
    );

    await relayAll(newRelay());

    expect((await tenantEvents()).every((e) => !e.queued)).toBe(true);
    await waitFor(
      async () => {
        await drain();
        return mine().length >= before.length;
      },
      10_000,
      'the published events to reach the queue',
    );
    await drain();

    const messages = mine();
    expect(messages.map((m) => m.messageId).sort()).toEqual(before.map((e) => e.id).sort());
    for (const event of before) {
      const copies = messages.filter((m) => m.messageId === event.id);
      expect(copies, event.id).toHaveLength(1);
      const [message] = copies;
      expect(message.routingKey).toBe(event.type);
      expect(message.contentType).toBe('application/json');
      expect(message.headers).toMatchObject({ tenant_id: tenant.id, livemode: false });
      expect(message.body).toMatchObject({
        id: event.id,
        object: 'event',
        type: event.type,
        tenant: tenant.id,
        livemode: false,
      });
      expect(message.body.data.object.id).toBe(event.object_id);
    }
  });

  it('a further pass publishes nothing already published, only what was committed since', async () => {
    const alreadySeen = mine().length;
    expect(alreadySeen).toBeGreaterThan(0);

    // A fresh relay (as after a worker restart) finds nothing of ours left to send.
    await newRelay().relayOnce();
    await drain();
    expect(mine().length).toBe(alreadySeen);

    const response = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 999,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expect(response.statusCode).toBe(200);
    const paymentId = response.json().id as string;
    await relayAll(newRelay());
    await waitFor(
      async () => {
        await drain();
        return mine().length >= alreadySeen + 2;
      },
      10_000,
      'the new events to reach the queue',
    );
    await drain();

    const fresh = mine().slice(alreadySeen);
    expect(fresh.map((m) => m.routingKey).sort()).toEqual(['payment.created', 'payment.succeeded']);
    expect(fresh.every((m) => m.body.data.object.id === paymentId)).toBe(true);
    // Earlier events were not published again: one message per event of ours, all of them dequeued.
    const all = mine().map((m) => m.messageId);
    expect(new Set(all).size).toBe(all.length);
    const events = await tenantEvents();
    expect(all.sort()).toEqual(events.map((e) => e.id).sort());
    expect(events.every((e) => !e.queued)).toBe(true);
  });

  it('an event the broker did not confirm stays queued and goes out on the next pass', async () => {
    const response = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 500, currency: 'usd' });
    expect(response.statusCode).toBe(200);
    const paymentId = response.json().id as string;
    // A relay pointed at a broker that refuses the login cannot publish: nothing is dequeued.
    const broken = new OutboxRelay(t.platform.workerSql, amqpUrl!.replace(/\/\/[^@]*@/, '//nobody:wrong@'));
    await expect(broken.relayOnce()).rejects.toThrow();
    await broken.close();
    const pending = (await tenantEvents()).filter((e) => e.object_id === paymentId);
    expect(pending.map((e) => [e.type, e.queued])).toEqual([['payment.created', true]]);

    await relayAll(newRelay());
    expect(await publishedFor(paymentId)).toEqual(['payment.created']);
  });

  it('a broker that stops reading fails the pass within the confirm bound; the events go out once it reads again', async () => {
    const target = new URL(amqpUrl!);
    const proxy = await HoldProxy.start({ host: target.hostname, port: Number(target.port || 5672) });
    try {
      const relay = new OutboxRelay(t.platform.workerSql, proxy.url(amqpUrl!), 500);
      relays.push(relay);
      // A pass with an event to publish, so that the relay is connected through the proxy before it holds.
      const first = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 600, currency: 'usd' });
      expect(first.statusCode).toBe(200);
      await relayAll(relay);
      proxy.hold();
      const response = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 600, currency: 'usd' });
      expect(response.statusCode).toBe(200);
      const paymentId = response.json().id as string;
      // Without the bound this pass would wait for the confirm as long as the socket lives.
      await expect(relay.relayOnce()).rejects.toThrow(/did not confirm within 500 ms/);
      const pending = (await tenantEvents()).filter((e) => e.object_id === paymentId);
      expect(pending.map((e) => [e.type, e.queued])).toEqual([['payment.created', true]]);

      // The same relay opens a new connection of its own.
      proxy.release();
      await relayAll(relay);
      // What the stalled pass published never reached the broker: one message.
      expect(await publishedFor(paymentId)).toEqual(['payment.created']);
    } finally {
      await proxy.close();
    }
  });

  it("queues nothing while no relay is registered; a relay's first pass registers it again", async () => {
    const relayed = mine().length;
    // The test database is shared: no other suite depends on the registration, and the pass below puts it back.
    await t.admin`DELETE FROM event_relays`;
    const before = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 700, currency: 'usd' });
    expect(before.statusCode).toBe(200);
    expect((await tenantEvents()).filter((e) => e.object_id === before.json().id).map((e) => e.queued)).toEqual([
      false,
    ]);

    await newRelay().relayOnce();
    expect(await t.admin`SELECT name FROM event_relays`).toEqual([{ name: 'amqp' }]);
    const after = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 800, currency: 'usd' });
    expect(after.statusCode).toBe(200);
    await relayAll(newRelay());
    await waitFor(
      async () => {
        await drain();
        return mine().some((m) => m.body.data.object.id === after.json().id);
      },
      10_000,
      'the event written after the registration to reach the queue',
    );
    await drain();
    // Only the event written while a relay was registered went out.
    expect(
      mine()
        .slice(relayed)
        .map((m) => m.body.data.object.id),
    ).toEqual([after.json().id]);
  });
});
