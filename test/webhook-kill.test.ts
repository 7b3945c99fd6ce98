import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
} from './helpers.js';
import { HoldProxy } from './hold-proxy.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { startReceiver } from './webhook-receiver.js';
import { webhookTransports } from './webhook-transports.js';

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-webhook-kill-'));
// The worker opens the endpoints' signing secrets from the vault: it holds the app's KEK.
const VAULT_KEK = randomBytes(32).toString('base64');
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// The real worker binary, SIGKILLed while deliveries are in flight and events keep coming: on either transport.
describe.each(webhookTransports('webhook_kill'))('$label', (transport) => {
  const workers: ServerProcess[] = [];
  let t: TestApp;

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase(`webhook_kill_${transport.name}`, {
      ...transport.env,
      VAULT_KEK,
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8',
    });
  });

  afterAll(async () => {
    for (const worker of workers) await stopServer(worker);
    await t?.close();
    await transport.cleanup();
  });

  async function startWorker(env: Record<string, string> = {}) {
    const worker = await startServer('worker', {
      ...transport.env,
      DATABASE_URL: t.adminUrl,
      PORT: String(await freePort()),
      PLATFORM_API_KEY: PLATFORM_KEY,
      VAULT_KEK,
      JWT_SECRET: 'webhook-kill-jwt-secret-0123456789',
      SEED_DEMO_TENANT: 'false',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.2,0.2,0.2,0.2,0.2,0.2',
      ...env,
    });
    workers.push(worker);
    // A worker's logs say why a delivery never came (they go nowhere else): printed when the test fails.
    onTestFailed(() => console.error(`worker on ${worker.baseUrl}, its last output:\n${worker.output().slice(-8000)}`));
    return worker;
  }

  async function stopWorkers() {
    for (const worker of workers.splice(0)) await stopServer(worker, 'SIGKILL');
  }

  describe(`a worker killed mid-delivery (${transport.label})`, () => {
    it(
      'loses no event: every one arrives at least once, and a repeat carries the same webhook-id',
      { timeout: 240_000 },
      async () => {
        const tenant = await createTenant(t.app, 'Webhook kill');
        const post = (url: string, body?: unknown) => call(t.app, tenant.testKey, 'POST', url, body);
        let holding = true;
        // While the first worker lives, the receiver holds every request open: they are all mid-delivery when it dies.
        const receiver = await startReceiver(() => (holding ? 'hang' : { status: 200 }));
        try {
          await ok(await post('/v1/webhook_endpoints', { url: receiver.url, enabled_events: ['payment.succeeded'] }));
          const pay = () =>
            post('/v1/payments', {
              amount: 1000,
              currency: 'usd',
              payment_method: card(TEST_CARDS.visa),
              confirm: true,
            });

          const first = await startWorker();
          for (let i = 0; i < 10; i++) expect((await pay()).statusCode).toBe(200);
          await waitFor(() => receiver.received.length >= 3, 60_000, 'deliveries in flight');
          const inFlight = receiver.ids();
          await stopServer(first, 'SIGKILL');
          // Events keep coming while no worker runs.
          for (let i = 0; i < 10; i++) expect((await pay()).statusCode).toBe(200);
          holding = false;
          await startWorker();

          const events = await t.admin<{ id: string }[]>`
          SELECT id FROM events WHERE tenant_id = ${tenant.id} AND type = 'payment.succeeded'`;
          expect(events).toHaveLength(20);
          const expected = events.map((e) => e.id).sort();
          // Every event arrives, and the requests cut off by the kill come again once their lease runs out.
          const repeated = (id: string) => receiver.ids().filter((x) => x === id).length >= 2;
          await waitFor(
            () => expected.every((id) => receiver.ids().includes(id)) && inFlight.every(repeated),
            90_000,
            'every event at the receiver, and the cut-off ones again',
          );
          // The requests cut off by the kill came again, under the same webhook-id.
          const ids = receiver.ids();
          for (const id of inFlight) expect(ids.filter((x) => x === id).length).toBeGreaterThanOrEqual(2);
          expect(new Set(ids)).toEqual(new Set(expected));
          // Each delivery is recorded as delivered, too: none is left retrying into a closed receiver, whose retry
          // the next case's held broker connection would swallow.
          await waitFor(
            async () =>
              (await t.admin`SELECT 1 FROM webhook_deliveries WHERE tenant_id = ${tenant.id} AND status <> 'succeeded'`)
                .length === 0,
            60_000,
            'every delivery recorded as succeeded',
          );
        } finally {
          await receiver.close();
        }
      },
    );
  });
  // RabbitMQ: PostgreSQL says a delivery is on its way (dispatched, or an attempt recorded with its retry due) a
  // moment before the broker holds the message that carries it. A worker killed in that moment leaves the delivery
  // to the sweeper: within the short publish lease (WEBHOOK_AMQP_PUBLISH_LEASE_SECONDS, 10 s by default) of its due
  // time, not the 5 minutes of WEBHOOK_AMQP_LEASE_SECONDS, and with every attempt recorded once. The worker talks to
  // the broker through a proxy that stops forwarding at the chosen point, so its message never reaches the broker.
  if (transport.name === 'amqp')
    describe('a worker killed before the broker has its message (RabbitMQ)', () => {
      const amqpUrl = transport.env.AMQP_URL;
      const workQueue = `${transport.env.WEBHOOK_AMQP_PREFIX}.deliveries`;
      const target = { host: new URL(amqpUrl).hostname, port: Number(new URL(amqpUrl).port || 5672) };

      async function consumers(): Promise<number> {
        const connection = await amqp.connect(amqpUrl);
        try {
          return (await (await connection.createChannel()).checkQueue(workQueue)).consumerCount;
        } finally {
          await connection.close();
        }
      }

      /** The tenant's one delivery of its one payment.succeeded event, and how it stands. */
      async function deliveryOf(tenantId: string) {
        const rows = await t.admin<
          { id: string; event_id: string; status: string; attempts: number; dispatch_seq: number; short: boolean }[]
        >`
          SELECT d.id, d.event_id, d.status, d.attempts, d.dispatch_seq,
            d.dispatch_until <= now() + interval '10 seconds' AS short
          FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.tenant_id = ${tenantId} AND e.type = 'payment.succeeded'`;
        expect(rows.length).toBeLessThanOrEqual(1);
        return rows[0];
      }

      async function attemptsOf(deliveryId: string) {
        return t.admin<{ outcome: string; status_code: number }[]>`
          SELECT outcome, status_code FROM webhook_delivery_attempts WHERE delivery_id = ${deliveryId}
          ORDER BY attempted_at`;
      }

      /**
       * SIGKILLs the held worker, starts one straight on the broker and waits until the delivery has succeeded at the
       * receiver's request number `requests`, well inside the 300 s lease it would have waited for before.
       */
      async function resumeAfterKill(
        worker: ServerProcess,
        tenantId: string,
        receiver: Awaited<ReturnType<typeof startReceiver>>,
        requests: number,
      ) {
        await stopServer(worker, 'SIGKILL');
        await startWorker();
        await waitFor(() => receiver.received.length >= requests, 60_000, 'the delivery at the receiver');
        await waitFor(async () => (await deliveryOf(tenantId))?.status === 'succeeded', 30_000, 'its attempt recorded');
        expect(await deliveryOf(tenantId)).toMatchObject({ status: 'succeeded', attempts: requests });
      }

      async function setUp(name: string, answer: Parameters<typeof startReceiver>[0]) {
        await stopWorkers();
        const tenant = await createTenant(t.app, name);
        const receiver = await startReceiver(answer);
        // Where a delivery that never came stopped: at the receiver, or before (fan-out, dispatch, the queue).
        onTestFailed(async () => {
          const delivery = await deliveryOf(tenant.id).catch((error: unknown) => String(error));
          const consuming = await consumers().catch((error: unknown) => String(error));
          console.error(
            `receiver got ${receiver.received.length} request(s); the delivery: ${JSON.stringify(delivery)}; ` +
              `consumers of ${workQueue}: ${consuming}`,
          );
        });
        await ok(
          await call(t.app, tenant.testKey, 'POST', '/v1/webhook_endpoints', {
            url: receiver.url,
            enabled_events: ['payment.succeeded'],
          }),
        );
        const pay = async () =>
          expect(
            (
              await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
                amount: 1000,
                currency: 'usd',
                payment_method: card(TEST_CARDS.visa),
                confirm: true,
              })
            ).statusCode,
          ).toBe(200);
        return { tenant, receiver, pay };
      }

      it(
        'after recording a failed attempt, before its retry is in a delay queue: retried within the short lease, each attempt recorded once',
        { timeout: 180_000 },
        async () => {
          const proxy = await HoldProxy.start(target);
          // The first request fails; the proxy holds from that moment, so the retry the worker publishes once the
          // attempt is recorded never reaches the broker.
          const { tenant, receiver, pay } = await setUp('Killed before its retry is queued', (_, index) => {
            if (index > 0) return { status: 200 };
            proxy.hold();
            return { status: 500 };
          });
          try {
            const worker = await startWorker({ AMQP_URL: proxy.url(amqpUrl) });
            await pay();
            const recorded = await waitFor(
              async () => {
                const delivery = await deliveryOf(tenant.id);
                return delivery?.attempts === 1 && delivery;
              },
              60_000,
              'the failed attempt recorded',
            );
            expect(recorded).toMatchObject({ status: 'pending', short: true });
            await resumeAfterKill(worker, tenant.id, receiver, 2);
            expect(await attemptsOf(recorded.id)).toEqual([
              { outcome: 'failed', status_code: 500 },
              { outcome: 'succeeded', status_code: 200 },
            ]);
            expect(receiver.ids()).toEqual([recorded.event_id, recorded.event_id]);
          } finally {
            await receiver.close();
            await proxy.close();
          }
        },
      );

      it(
        'after dispatching, before its job is in the work queue: sent within the short lease, recorded once',
        { timeout: 180_000 },
        async () => {
          const proxy = await HoldProxy.start(target);
          const { tenant, receiver, pay } = await setUp('Killed before its job is queued', () => ({ status: 200 }));
          try {
            await waitFor(async () => (await consumers()) === 0, 30_000, 'no worker consuming');
            const worker = await startWorker({ AMQP_URL: proxy.url(amqpUrl) });
            // Consuming through the proxy before it holds: then only what the worker sends is held.
            await waitFor(async () => (await consumers()) === 1, 30_000, 'the worker consuming');
            proxy.hold();
            await pay();
            const dispatched = await waitFor(
              async () => {
                const delivery = await deliveryOf(tenant.id);
                return delivery && delivery.dispatch_seq > 0 && delivery;
              },
              60_000,
              'the delivery dispatched',
            );
            expect(dispatched).toMatchObject({ status: 'pending', attempts: 0, short: true });
            expect(receiver.received).toHaveLength(0);
            await resumeAfterKill(worker, tenant.id, receiver, 1);
            expect(await attemptsOf(dispatched.id)).toEqual([{ outcome: 'succeeded', status_code: 200 }]);
            expect(receiver.ids()).toEqual([dispatched.event_id]);
          } finally {
            await receiver.close();
            await proxy.close();
          }
        },
      );
    });
});
