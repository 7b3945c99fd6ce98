import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { SseClient } from './sse-client.js';
import { LATEST_API_VERSION } from '../src/modules/versions/versions.js';

// GET /v1/events/stream across two API processes on one database: events are written through the
// in-process app and streamed by a real server process (and the other way round), so they reach a
// stream only through PostgreSQL's notifications.

const secrets = {
  VAULT_KEK: randomBytes(32).toString('base64'),
  VAULT_FINGERPRINT_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(32).toString('base64'),
};
const STREAM_SETTINGS = { EVENT_STREAM_HEARTBEAT_MS: '300', EVENT_STREAM_MAX_PER_TENANT: '3' };
const dataDir = mkdtempSync(join(tmpdir(), 'payforward-stream-'));
let t: TestApp;
let local: string;
let server: ServerProcess;
const clients: SseClient[] = [];

async function open(baseUrl: string, key: string, query = '', lastEventId?: string, headers?: Record<string, string>) {
  const client = await SseClient.open(baseUrl, key, query, lastEventId, headers);
  clients.push(client);
  return client;
}

const pay = async (tenant: TestTenant, amount = 1000) =>
  ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    }),
  ) as Promise<{ id: string }>;

const about = (client: SseClient, objectId: string) => client.events.filter((e) => e.data.object.id === objectId);

beforeAll(async () => {
  t = await bootApp(STREAM_SETTINGS);
  local = await t.app.listen({ port: 0, host: '127.0.0.1' });
  server = await startServer('api', {
    DATABASE_URL: t.adminUrl,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    PLATFORM_API_KEY: PLATFORM_KEY,
    ...secrets,
    ...STREAM_SETTINGS,
    SEED_DEMO_TENANT: 'false',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    RATE_LIMIT_PER_KEY: '100000',
    RATE_LIMIT_PER_TENANT: '100000',
  });
}, 180_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await stopServer(server, 'SIGTERM');
  // The app does not force connections closed on shutdown (it answers late requests in our envelope),
  // and fetch leaves some of this file's connections open: cut them, or closing waits for keep-alive.
  t.app.server.closeAllConnections();
  await t.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('GET /v1/events/stream', () => {
  it('delivers an event written through another process, as GET /v1/events/{id} shows it, with heartbeats', async () => {
    const tenant = await createTenant(t.app, 'Stream tenant');
    const stream = await open(server.baseUrl, tenant.testKey);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const payment = await pay(tenant);
    await waitFor(() => about(stream, payment.id).length === 2, 20_000, 'the payment events on the stream');
    expect(about(stream, payment.id).map((e) => e.type)).toEqual(['payment.created', 'payment.succeeded']);
    for (const event of about(stream, payment.id))
      expect(event).toEqual(await ok(await call(t.app, tenant.testKey, 'GET', `/v1/events/${event.id}`)));
    await waitFor(() => stream.heartbeats >= 2, 20_000, 'heartbeats');
  });

  it("never shows another tenant's events, nor the other mode's", async () => {
    const [a, b] = [await createTenant(t.app, 'Stream A'), await createTenant(t.app, 'Stream B')];
    const streamB = await open(server.baseUrl, b.testKey);
    const liveB = await open(server.baseUrl, b.liveKey);
    const paymentsA = await Promise.all([pay(a), pay(a), pay(a)]);
    const paymentB = await pay(b);
    await waitFor(() => about(streamB, paymentB.id).length === 2, 20_000, "B's own events");
    const ofA = new Set(paymentsA.map((p) => p.id));
    expect(streamB.events.filter((e) => ofA.has(e.data.object.id))).toEqual([]);
    expect(streamB.events.every((e) => e.data.object.id === paymentB.id)).toBe(true);
    expect(liveB.events).toEqual([]);
  });

  it('filters by type, exact and wildcard', async () => {
    const tenant = await createTenant(t.app, 'Stream filter');
    const refunds = await open(server.baseUrl, tenant.testKey, '?types=refund.*');
    const created = await open(local, tenant.testKey, '?types=payment.created,refund.succeeded');
    const payment = await pay(tenant);
    const refund = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id }));
    await waitFor(() => about(refunds, refund.id).length === 2, 20_000, 'the refund events');
    await waitFor(() => about(created, refund.id).length === 1, 20_000, 'refund.succeeded');
    expect(refunds.events.map((e) => e.type)).toEqual(['refund.created', 'refund.succeeded']);
    expect(created.events.map((e) => e.type)).toEqual(['payment.created', 'refund.succeeded']);
  });

  it('resumes with Last-Event-ID, on another process, with every event in between exactly once', async () => {
    const tenant = await createTenant(t.app, 'Stream resume');
    const first = await open(server.baseUrl, tenant.testKey);
    // Payments written concurrently, in shared batches, commit in any order relative to their ids.
    const writing = Promise.all(Array.from({ length: 40 }, (_, i) => pay(tenant, 1000 + i)));
    await waitFor(() => first.messages.length >= 10, 30_000, 'the first events');
    first.close();
    const received = first.messages.length;
    const payments = await writing;
    const second = await open(local, tenant.testKey, '', first.lastId);
    expect(second.response.status).toBe(200);
    const after = await pay(tenant);
    await waitFor(() => about(second, after.id).length === 2, 30_000, 'a live event after the resume');
    expect(first.messages.length).toBe(received);
    const ids = [...first.events, ...second.events].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const stored = await t.admin<
      { id: string }[]
    >`SELECT id FROM events WHERE tenant_id = ${tenant.id} AND NOT livemode`;
    expect(ids.sort()).toEqual(stored.map((r) => r.id).sort());
    expect(stored).toHaveLength(2 * (payments.length + 1));
  });

  it('refuses a stream over the per-tenant limit counted across both processes with 429, and accepts one again after a close', async () => {
    const tenant = await createTenant(t.app, 'Stream limit');
    const streams = await Promise.all([
      open(server.baseUrl, tenant.testKey),
      open(server.baseUrl, tenant.testKey),
      open(local, tenant.liveKey),
    ]);
    for (const stream of streams) expect(stream.response.status).toBe(200);
    // Each process serves fewer than the limit of 3 itself: only the shared count refuses.
    for (const baseUrl of [server.baseUrl, local]) {
      const refused = await open(baseUrl, tenant.testKey);
      expect(refused.response.status, baseUrl).toBe(429);
      expect((await refused.response.json()).error).toMatchObject({
        type: 'rate_limit_error',
        code: 'too_many_streams',
      });
    }
    const other = await createTenant(t.app, 'Stream limit, other tenant');
    expect((await open(local, other.testKey)).response.status).toBe(200);
    streams[0].close();
    const again = await waitFor(async () => {
      const stream = await open(local, tenant.testKey);
      return stream.response.status === 200 && stream;
    });
    expect(again.response.status).toBe(200);
    expect((await open(server.baseUrl, tenant.testKey)).response.status).toBe(429);
  });

  it("shows events in the caller's API version: the PayForward-Version header, else the tenant's pinned one", async () => {
    const FIRST = '2026-11-01';
    const pinned = await ok(
      await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'Stream pinned', api_version: FIRST }),
    );
    const key = pinned.secret_keys.test.secret as string;
    const asPinned = await open(server.baseUrl, key, '?types=balance.available');
    const asLatest = await open(local, key, '?types=balance.available', undefined, {
      'payforward-version': LATEST_API_VERSION,
    });
    expect(asLatest.response.headers.get('payforward-version')).toBe(LATEST_API_VERSION);
    const badVersion = await open(local, key, '', undefined, { 'payforward-version': '1999-01-01' });
    expect(badVersion.response.status).toBe(400);
    const payment = await ok(
      await call(t.app, key, 'POST', '/v1/payments', {
        amount: 4_000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    const txn = await ok(await call(t.app, key, 'GET', `/v1/balance_transactions/${payment.balance_transaction}`));
    await t.platform.settlements.run(new Date(txn.available_on * 1000));
    const day = new Date(txn.available_on * 1000).toISOString().slice(0, 10);
    await waitFor(() => asPinned.events.length >= 1 && asLatest.events.length >= 1, 20_000, 'balance.available');
    const [old] = asPinned.events;
    expect(old).toMatchObject({ api_version: FIRST, data: { object: { settlement_date: day } } });
    expect(asLatest.events[0]).toMatchObject({
      id: old.id,
      api_version: LATEST_API_VERSION,
      data: { object: { settlement_date: txn.available_on } },
    });
    // Exactly as the API shows the event to the same caller.
    expect(old).toEqual(await ok(await call(t.app, key, 'GET', `/v1/events/${old.id}`)));
    expect(asLatest.events[0]).toEqual(
      await ok(
        await call(t.app, key, 'GET', `/v1/events/${old.id}`, undefined, { 'payforward-version': LATEST_API_VERSION }),
      ),
    );
  });

  it('401 without a key, 403 without events:read, 400 on bad types or Last-Event-ID', async () => {
    const tenant = await createTenant(t.app, 'Stream errors');
    const anonymous = await fetch(`${server.baseUrl}/v1/events/stream`);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.type).toBe('authentication_error');
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }),
    );
    const forbidden = await open(server.baseUrl, restricted.secret);
    expect(forbidden.response.status).toBe(403);
    expect((await forbidden.response.json()).error.type).toBe('permission_error');
    const reader = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'] }));
    expect((await open(server.baseUrl, reader.secret)).response.status).toBe(200);
    for (const query of ['?types=payment.exploded', '?types=', '?types=payment.*,nothing.*', '?limit=3']) {
      const bad = await open(server.baseUrl, tenant.testKey, query);
      expect(bad.response.status, query).toBe(400);
      expect((await bad.response.json()).error).toMatchObject({ type: 'invalid_request_error' });
    }
    for (const id of ['evt_123', '5:3:', '3:9:7,5', '3:9:4/3:8:/1', '3:9:4/3:9:/x', '1:2:/1:2:/' + '9'.repeat(200)]) {
      const bad = await open(server.baseUrl, tenant.testKey, '', id);
      expect(bad.response.status, id.slice(0, 20)).toBe(400);
      expect((await bad.response.json()).error).toMatchObject({
        code: 'invalid_last_event_id',
        param: 'Last-Event-ID',
      });
    }
  });
});
