import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '../src/db/index.js';
import { apiServerEnv, card, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { startOwnPostgres, type OwnPostgres } from './own-postgres.js';
import { startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { SseClient } from './sse-client.js';

// GET /v1/events/stream while the API's PostgreSQL (a server of the test's own) stops at once, as a
// crash or failover would, and starts again: the stream ends with a reason, the API's LISTEN
// connection comes back by itself, and a client resuming with Last-Event-ID gets every event of the
// tenant exactly once, those written before, after the restart while it was away, and live ones.

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-stream-restart-'));
let pg: OwnPostgres | undefined;
let api: ServerProcess | undefined;
const clients: SseClient[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  await stopServer(api);
  await pg?.remove();
  rmSync(dataDir, { recursive: true, force: true });
});

async function pay(baseUrl: string, key: string, amount: number): Promise<{ status: number; id?: string }> {
  try {
    const response = await fetch(`${baseUrl}/v1/payments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true }),
      signal: AbortSignal.timeout(20_000),
    });
    const body = (await response.json()) as { id?: string };
    return { status: response.status, id: body.id };
  } catch {
    return { status: 0 };
  }
}

async function open(baseUrl: string, key: string, lastEventId?: string): Promise<SseClient> {
  const client = await SseClient.open(baseUrl, key, '', lastEventId);
  clients.push(client);
  return client;
}

describe('the event stream across a PostgreSQL restart', () => {
  it('reconnects its LISTEN connection and resumes from Last-Event-ID with every event exactly once', async () => {
    pg = await startOwnPostgres();
    api = await startServer('api', {
      ...(await apiServerEnv(pg.url, dataDir)),
      EVENT_STREAM_HEARTBEAT_MS: '300',
      RATE_LIMIT_PER_KEY: '100000',
      RATE_LIMIT_PER_TENANT: '100000',
    });
    const baseUrl = api.baseUrl;
    const created = await fetch(`${baseUrl}/v1/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PLATFORM_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Stream restart tenant' }),
    });
    expect(created.status).toBe(200);
    const tenant = (await created.json()) as { id: string; secret_keys: { test: { secret: string } } };
    const key = tenant.secret_keys.test.secret;

    const admin = connect(pg.url, { max: 1 });
    const eventIds = async () =>
      (await admin<{ id: string }[]>`SELECT id FROM events WHERE tenant_id = ${tenant.id}`).map((r) => r.id);
    // Whatever the tenant's creation wrote came before any stream.
    const earlier = new Set(await eventIds());
    const before = await open(baseUrl, key);
    expect(before.response.status).toBe(200);
    for (const amount of [1000, 1001]) expect((await pay(baseUrl, key, amount)).status).toBe(200);
    await waitFor(() => before.messages.length === 4, 20_000, 'the events written before the restart');

    await pg.kill();
    await waitFor(() => before.ended, 20_000, 'the stream to end with the database');
    expect(before.errors).toEqual([{ error: expect.objectContaining({ code: 'database_unavailable' }) }]);
    await pg.start();

    // Written after the restart while no stream is open: the resumed stream must catch up on them.
    await waitFor(async () => (await pay(baseUrl, key, 1002)).status === 200, 60_000, 'a payment after the restart');
    for (const amount of [1003, 1004]) expect((await pay(baseUrl, key, amount)).status).toBe(200);

    // Until the API listens again it refuses streams (503): retried as an EventSource would.
    const resumed = await waitFor(
      async () => {
        const client = await open(baseUrl, key, before.lastId);
        return client.response.status === 200 && client;
      },
      60_000,
      'the stream to accept a resume',
    );
    // A payment after the resume reaches the stream only through a notification on the new LISTEN connection.
    const live = await pay(baseUrl, key, 1005);
    expect(live.status).toBe(200);
    await waitFor(
      () => resumed.events.filter((e) => e.data.object.id === live.id).length === 2,
      20_000,
      'a live event after the restart',
    );

    try {
      const stored = (await eventIds()).filter((id) => !earlier.has(id));
      const received = [...before.events, ...resumed.events].map((e) => e.id);
      expect(new Set(received).size).toBe(received.length);
      expect(received.sort()).toEqual(stored.sort());
      expect(stored.length).toBeGreaterThanOrEqual(12);
    } finally {
      await admin.end();
    }
  }, 240_000);
});
