import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { ownRabbitMqAvailable, startOwnRabbitMq, type OwnRabbitMq } from './own-rabbitmq.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { startReceiver } from './webhook-receiver.js';

// RabbitMQ crashes (SIGKILL) and comes back while events keep coming, with the real worker binary delivering. The
// broker is a node of this test's own (test/own-rabbitmq.ts): the shared one on 5672 is never restarted.
let dataDir: string;
const VAULT_KEK = randomBytes(32).toString('base64');
let rabbit: OwnRabbitMq;
let t: TestApp;
let worker: ServerProcess | undefined;

describe.runIf(ownRabbitMqAvailable())('RabbitMQ restarted during a stream of events', () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'payforward-webhook-rabbitmq-'));
    rabbit = await startOwnRabbitMq();
    t = await bootAppOnOwnDatabase('webhook_rabbitmq_restart', {
      VAULT_KEK,
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8',
      AMQP_URL: rabbit.url,
      WEBHOOK_TRANSPORT: 'amqp',
    });
  }, 120_000);

  afterAll(async () => {
    if (worker) await stopServer(worker);
    await t?.close();
    await rabbit?.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'loses no event: each one arrives at least once, signed, a repeat under the same webhook-id; the worker and the API carry on',
    { timeout: 300_000 },
    async () => {
      const tenant = await createTenant(t.app, 'RabbitMQ restart');
      const post = (url: string, body?: unknown) => call(t.app, tenant.testKey, 'POST', url, body);
      const receiver = await startReceiver(() => ({ status: 200 }));
      try {
        const endpoint = await ok(
          await post('/v1/webhook_endpoints', { url: receiver.url, enabled_events: ['payment.succeeded'] }),
        );
        worker = await startServer('worker', {
          DATABASE_URL: t.adminUrl,
          PORT: String(await freePort()),
          PLATFORM_API_KEY: PLATFORM_KEY,
          VAULT_KEK,
          JWT_SECRET: 'webhook-rabbitmq-jwt-secret-0123456789',
          SEED_DEMO_TENANT: 'false',
          LOG_LEVEL: 'error',
          DATA_DIR: dataDir,
          WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8',
          AMQP_URL: rabbit.url,
          WEBHOOK_TRANSPORT: 'amqp',
          WEBHOOK_TIMEOUT_MS: '2000',
          WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.2,0.2,0.2,0.2,0.2,0.2',
          // A job lost with the broker (published, never confirmed) goes out again after this long.
          WEBHOOK_AMQP_LEASE_SECONDS: '5',
        });

        // A steady stream of payments, each one's transaction writing a payment.succeeded event.
        let producing = true;
        let paid = 0;
        const failures: string[] = [];
        const producer = (async () => {
          while (producing) {
            const response = await post('/v1/payments', {
              amount: 1000 + paid,
              currency: 'usd',
              payment_method: card(TEST_CARDS.visa),
              confirm: true,
            });
            if (response.statusCode === 200) paid++;
            else failures.push(`${response.statusCode} ${response.body}`);
          }
        })();

        await waitFor(() => receiver.received.length >= 10, 60_000, 'deliveries before the crash');
        await rabbit.kill();
        const paidAtCrash = paid;
        // The API answers as usual while the broker is away.
        await waitFor(() => paid >= paidAtCrash + 10, 60_000, 'payments while RabbitMQ is down');
        await rabbit.start();
        const receivedAtRestart = receiver.received.length;
        await waitFor(() => receiver.received.length >= receivedAtRestart + 10, 90_000, 'deliveries after the restart');
        producing = false;
        await producer;
        expect(failures).toEqual([]);

        const events = await t.admin<{ id: string }[]>`
          SELECT id FROM events WHERE tenant_id = ${tenant.id} AND type = 'payment.succeeded'`;
        expect(events.length).toBe(paid);
        const expected = events.map((e) => e.id).sort();
        await waitFor(
          () => expected.every((id) => receiver.ids().includes(id)),
          120_000,
          'every event at the receiver',
        );
        expect(new Set(receiver.ids())).toEqual(new Set(expected));
        // Every request, repeats included, is signed and carries its own event's id as webhook-id.
        const webhook = new Webhook(endpoint.secret);
        for (const request of receiver.received) {
          const verified = webhook.verify(request.body, request.headers as Record<string, string>) as { id: string };
          expect(verified.id).toBe(request.headers['webhook-id']);
        }
        // The delivery log agrees, and the worker process lived through it all.
        await waitFor(async () => {
          const [{ n }] = await t.admin<{ n: number }[]>`
            SELECT count(*)::int AS n FROM webhook_deliveries WHERE tenant_id = ${tenant.id} AND status = 'succeeded'`;
          return n === expected.length;
        }, 30_000);
        expect(worker.child.exitCode).toBeNull();
      } finally {
        await receiver.close();
      }
    },
  );
});
