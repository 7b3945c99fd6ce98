import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  async function startWorker() {
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
      // RabbitMQ: a kill between recording an attempt and publishing its retry to a delay queue leaves the delivery
      // to the sweeper once its lease runs out (5 minutes by default); shortened so that case fits the deadline.
      WEBHOOK_AMQP_LEASE_SECONDS: '10',
    });
    workers.push(worker);
    return worker;
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
        } finally {
          await receiver.close();
        }
      },
    );
  });
});
