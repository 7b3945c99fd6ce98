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

// GET /v1/events/stream across two API processes on one database: events are written through the
// in-process app and streamed by a real server process (and the other way round), so they reach a
// stream only through PostgreSQL's notifications.

interface StreamedEvent {
  id: string;
  type: string;
  sequence: number;
  data: { object: { id: string } };
}

/** A minimal server-sent-events client over fetch: complete messages only, as EventSource keeps them. */
class SseClient {
  readonly messages: { id: string; event: StreamedEvent }[] = [];
  readonly errors: unknown[] = [];
  heartbeats = 0;
  ended = false;
  private readonly abort = new AbortController();

  private constructor(readonly response: Response) {}

  static async open(baseUrl: string, key: string, query = '', lastEventId?: string): Promise<SseClient> {
    const abort = new AbortController();
    const response = await fetch(`${baseUrl}/v1/events/stream${query}`, {
      headers: { authorization: `Bearer ${key}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
      signal: abort.signal,
    });
    const client = new SseClient(response);
    client.abort.signal.addEventListener('abort', () => abort.abort());
    if (response.ok) void client.read();
    return client;
  }

  get events() {
    return this.messages.map((m) => m.event);
  }

  get lastId() {
    return this.messages[this.messages.length - 1]?.id;
  }

  close() {
    this.abort.abort();
  }

  private async read() {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of this.response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
  }

  private parse(block: string) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        if (line.includes('heartbeat')) this.heartbeats++;
        continue;
      }
      const colon = line.indexOf(':');
      fields.set(line.slice(0, colon), line.slice(colon + 2));
    }
    if (fields.get('event') === 'stream_error') this.errors.push(JSON.parse(fields.get('data')!));
    else if (fields.has('data')) this.messages.push({ id: fields.get('id')!, event: JSON.parse(fields.get('data')!) });
  }
}

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

async function open(baseUrl: string, key: string, query = '', lastEventId?: string) {
  const client = await SseClient.open(baseUrl, key, query, lastEventId);
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

  it('refuses a stream over the per-tenant limit with 429, and accepts one again after a close', async () => {
    const tenant = await createTenant(t.app, 'Stream limit');
    const streams = await Promise.all([1, 2, 3].map(() => open(server.baseUrl, tenant.testKey)));
    for (const stream of streams) expect(stream.response.status).toBe(200);
    const refused = await open(server.baseUrl, tenant.testKey);
    expect(refused.response.status).toBe(429);
    expect((await refused.response.json()).error).toMatchObject({ type: 'rate_limit_error', code: 'too_many_streams' });
    streams[0].close();
    const again = await waitFor(async () => {
      const stream = await open(server.baseUrl, tenant.testKey);
      return stream.response.status === 200 && stream;
    });
    expect(again.response.status).toBe(200);
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
