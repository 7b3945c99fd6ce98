import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appDatabaseUrl, connect, type Sql } from '../../db/index.js';
import { bootWithTenants, call, card, ok, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { RequestLogRecorder } from './recorder.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  [t, tenant, other] = await bootWithTenants('Request log shop', 'Someone else');
});
afterAll(() => t?.close());

const logs = async (key: string, query = '') => {
  await t.platform.requestLogRecorder.flush();
  return ok(await call(t.app, key, 'GET', `/v1/request_logs${query}`));
};

describe('request logs', () => {
  it('records each call with its key, status, idempotency key, error code and latency, never its body', async () => {
    const created = await call(
      t.app,
      tenant.testKey,
      'POST',
      '/v1/payments?expand=nothing',
      { amount: 1500, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true },
      { 'idempotency-key': 'order-1500' },
    );
    expect(created.statusCode).toBe(200);
    const declined = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 900,
      currency: 'usd',
      payment_method: card(TEST_CARDS.declined),
      confirm: true,
    });
    expect(declined.statusCode).toBe(402);

    const page = await logs(tenant.testKey, '?limit=2');
    expect(page.data.map((log: { id: string }) => log.id)).toEqual([
      declined.headers['request-id'],
      created.headers['request-id'],
    ]);
    const [failure, success] = page.data;
    expect(success).toMatchObject({
      object: 'request_log',
      livemode: false,
      method: 'POST',
      path: '/v1/payments',
      route: '/v1/payments',
      status: 200,
      api_key: tenant.testKeyId,
      idempotency_key: 'order-1500',
      idempotent_replayed: false,
      error: null,
      source_ip: '127.0.0.1',
    });
    expect(success.latency_ms).toBeGreaterThanOrEqual(0);
    expect(failure).toMatchObject({
      status: 402,
      idempotency_key: null,
      error: { type: 'card_error', code: 'card_declined' },
    });

    const stored = await t.admin`SELECT row_to_json(r)::text AS row FROM request_logs r WHERE tenant_id = ${tenant.id}`;
    expect(stored.length).toBeGreaterThanOrEqual(2);
    for (const { row } of stored) {
      expect(row).not.toContain(TEST_CARDS.visa);
      expect(row).not.toContain(TEST_CARDS.declined);
      expect(row).not.toContain(tenant.testKey);
      expect(row).not.toContain('expand=nothing');
    }
  });

  it('marks a replayed idempotent request, and masks a card number typed into a URL', async () => {
    const body = { amount: 700, currency: 'usd' };
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payments', body, { 'idempotency-key': 'replay-me' }));
    const replay = await call(t.app, tenant.testKey, 'POST', '/v1/payments', body, { 'idempotency-key': 'replay-me' });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const careless = await call(t.app, tenant.testKey, 'GET', `/v1/payments/${TEST_CARDS.visa}`);
    expect(careless.statusCode).toBe(404);

    await t.platform.requestLogRecorder.flush();
    const replayed = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/request_logs/${replay.headers['request-id']}`),
    );
    expect(replayed).toMatchObject({ idempotency_key: 'replay-me', idempotent_replayed: true, status: 200 });
    const masked = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/request_logs/${careless.headers['request-id']}`),
    );
    expect(masked.path).toBe('/v1/payments/[redacted]');
    expect(masked.error).toEqual({ type: 'invalid_request_error', code: 'resource_missing' });
  });

  it('filters by status, status class, method, path, key and error code, and pages', async () => {
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'], name: 'reader' }),
    );
    await ok(await call(t.app, restricted.secret, 'GET', '/v1/payments'));

    const errors = await logs(tenant.testKey, '?status=4xx&limit=100');
    expect(errors.data.length).toBeGreaterThan(0);
    expect(errors.data.every((log: { status: number }) => log.status >= 400 && log.status < 500)).toBe(true);
    const declines = await logs(tenant.testKey, '?status=402');
    expect(declines.data.map((log: { status: number }) => log.status)).toEqual([402]);
    const byCode = await logs(tenant.testKey, '?error_code=card_declined');
    expect(byCode.data).toHaveLength(1);
    const byKey = await logs(tenant.testKey, `?api_key=${restricted.id}`);
    expect(byKey.data).toHaveLength(1);
    expect(byKey.data[0]).toMatchObject({ method: 'GET', path: '/v1/payments', api_key: restricted.id });
    const gets = await logs(tenant.testKey, '?method=GET&path=/v1/request_logs&limit=100');
    expect(gets.data.length).toBeGreaterThan(0);
    expect(gets.data.every((log: { path: string }) => log.path.startsWith('/v1/request_logs'))).toBe(true);
    // LIKE wildcards in the prefix match literally.
    expect((await logs(tenant.testKey, '?path=/v1/%25')).data).toEqual([]);

    const first = await logs(tenant.testKey, '?limit=1');
    expect(first.has_more).toBe(true);
    const second = await logs(tenant.testKey, `?limit=1&starting_after=${first.data[0].id}`);
    expect(second.data[0].id < first.data[0].id).toBe(true);
  });

  it("keeps tenants and modes apart: another tenant's or the other mode's request is a 404", async () => {
    const mine = await call(t.app, tenant.testKey, 'GET', '/v1/payments');
    await t.platform.requestLogRecorder.flush();
    const id = mine.headers['request-id'] as string;
    expect((await call(t.app, other.testKey, 'GET', `/v1/request_logs/${id}`)).statusCode).toBe(404);
    expect((await call(t.app, tenant.liveKey, 'GET', `/v1/request_logs/${id}`)).statusCode).toBe(404);
    const theirs = await logs(other.testKey, '?limit=100');
    expect(theirs.data.some((log: { id: string }) => log.id === id)).toBe(false);
    const live = await logs(tenant.liveKey, '?limit=100');
    expect(live.data.every((log: { livemode: boolean }) => log.livemode)).toBe(true);
  });

  it('needs the request_logs:read scope, a key, and well-formed filters', async () => {
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:write'], name: 'writer' }),
    );
    const refused = await call(t.app, restricted.secret, 'GET', '/v1/request_logs');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('missing_scope');
    const reader = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['request_logs:read'], name: 'debugger' }),
    );
    await ok(await call(t.app, reader.secret, 'GET', '/v1/request_logs'));
    expect((await t.app.inject({ method: 'GET', url: '/v1/request_logs' })).statusCode).toBe(401);
    for (const query of ['status=abc', 'status=6xx', 'method=TRACE', 'limit=0', 'path=', 'color=red']) {
      const bad = await call(t.app, tenant.testKey, 'GET', `/v1/request_logs?${query}`);
      expect(bad.statusCode, query).toBe(400);
      expect(bad.json().error.type).toBe('invalid_request_error');
    }
  });

  it('are purged by the worker after the retention period', async () => {
    const old = await call(t.app, tenant.testKey, 'GET', '/v1/payments');
    const recent = await call(t.app, tenant.testKey, 'GET', '/v1/payments');
    await t.platform.requestLogRecorder.flush();
    await t.admin`UPDATE request_logs SET created_at = now() - interval '31 days' WHERE id = ${old.headers['request-id'] as string}`;
    const [{ purged }] = await t.platform.workerSql`
      SELECT worker_purge_request_logs('30 days'::interval, 1000) AS purged`;
    expect(Number(purged)).toBeGreaterThanOrEqual(1);
    expect((await call(t.app, tenant.testKey, 'GET', `/v1/request_logs/${old.headers['request-id']}`)).statusCode).toBe(
      404,
    );
    await ok(await call(t.app, tenant.testKey, 'GET', `/v1/request_logs/${recent.headers['request-id']}`));
  });
});

/** A TCP forwarder to PostgreSQL that can refuse and cut every connection, then let them through again. */
async function switchableProxy(target: {
  hostname: string;
  port: string;
}): Promise<{ port: number; down(): void; up(): void; close(): Promise<void> }> {
  let refusing = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = connectTcp(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    down() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    up() {
      refusing = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A tenant's GET as the recorder sees it once answered, without a server around it. */
const answeredRequest = (id: string) =>
  ({
    id,
    method: 'GET',
    url: '/v1/payments',
    headers: {},
    ip: '127.0.0.1',
    routeOptions: { url: '/v1/payments' },
    auth: { kind: 'tenant', tenantId: tenant.id, livemode: false, keyId: tenant.testKeyId },
  }) as never;
const answered200 = { statusCode: 200, elapsedTime: 3, getHeader: () => undefined } as never;

/** A recorder of its own on `url` that flushes only when told to, and the counts it dropped. */
function recorderOn(url: URL, maxBuffered: number) {
  const sql: Sql = connect(url.toString(), { max: 1 });
  const dropped: number[] = [];
  const recorder = new RequestLogRecorder(sql, {
    flushIntervalMs: 60_000,
    maxBuffered,
    batchSize: 100,
    onDropped: (count) => dropped.push(count),
  });
  return { sql, recorder, dropped };
}

describe('request log recorder while the database is away', () => {
  it('keeps the rows it could not write and writes them once the database is back', async () => {
    const url = new URL(appDatabaseUrl(t.adminUrl, t.config));
    const proxy = await switchableProxy({ hostname: url.hostname, port: url.port });
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const { sql, recorder, dropped } = recorderOn(url, 3);
    try {
      const answered = await call(t.app, tenant.testKey, 'GET', '/v1/payments');
      const ids = ['req_outage_1', 'req_outage_2', 'req_outage_3', 'req_outage_4'].map(
        (id) => `${id}_${answered.headers['request-id']}`,
      );
      proxy.down();
      for (const id of ids) recorder.record(answeredRequest(id), answered200, '{}');
      // The write waits for (or fails on) the missing connection; the rows stay held meanwhile.
      const writing = recorder.flush();
      expect(dropped).toEqual([1]);
      const during = await t.admin`SELECT count(*)::int AS n FROM request_logs WHERE id = ANY(${ids})`;
      expect(during[0].n).toBe(0);

      proxy.up();
      await writing;
      await recorder.flush();
      const after = await t.admin`SELECT id FROM request_logs WHERE id = ANY(${ids}) ORDER BY id`;
      expect(after.map((row) => row.id)).toEqual(ids.slice(0, 3));
    } finally {
      await recorder.close();
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  it('keeps a batch that lost a lock wait and writes it at the next flush, dropping nothing', async () => {
    // lock_timeout on the recorder's own connection turns the wait behind the lock below into a failure (55P03), as a
    // lost deadlock (40P01) would be.
    const url = new URL(appDatabaseUrl(t.adminUrl, t.config));
    url.searchParams.set('lock_timeout', '200');
    const { sql, recorder, dropped } = recorderOn(url, 10);
    const ids = ['req_locked_1', 'req_locked_2'].map((id) => `${id}_${Date.now()}`);
    try {
      await t.admin.begin(async (tx) => {
        await tx`LOCK TABLE request_logs IN ACCESS EXCLUSIVE MODE`;
        for (const id of ids) recorder.record(answeredRequest(id), answered200, '{}');
        await recorder.flush();
      });
      expect(dropped).toEqual([]);
      const during = await t.admin`SELECT count(*)::int AS n FROM request_logs WHERE id = ANY(${ids})`;
      expect(during[0].n).toBe(0);

      await recorder.flush();
      const after = await t.admin`SELECT id FROM request_logs WHERE id = ANY(${ids}) ORDER BY id`;
      expect(after.map((row) => row.id)).toEqual(ids);
      expect(dropped).toEqual([]);
    } finally {
      await recorder.close();
      await sql.end({ timeout: 1 });
    }
  });
});
