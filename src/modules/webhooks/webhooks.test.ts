import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebhookDispatcher } from '../../workers/webhook-delivery.js';
import {
  bootApp,
  bootAppOnOwnDatabase,
  call,
  createTenant,
  ok,
  rolledBack,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const endpoint = (extra: Record<string, unknown> = {}) => ({
  url: 'https://example.com/hooks',
  enabled_events: ['payment.*', 'refund.succeeded'],
  ...extra,
});

beforeAll(async () => {
  // Endpoints here name a real public address (no DNS needed to register them): on a database of its own, no
  // other test file's worker ever tries to deliver to it.
  t = await bootAppOnOwnDatabase('webhooks_api', { WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8' });
  tenant = await createTenant(t.app, 'Webhook API tenant');
  other = await createTenant(t.app, 'Other webhook tenant');
});
afterAll(() => t.close());

const PUBLIC_URL = 'https://93.184.215.14/hooks';

describe('webhook endpoints', () => {
  it('creates an endpoint and shows its whsec_ secret only on creation', async () => {
    const created = await ok(
      await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL, description: 'orders', metadata: { a: '1' } })),
    );
    expect(created).toMatchObject({
      object: 'webhook_endpoint',
      url: PUBLIC_URL,
      enabled_events: ['payment.*', 'refund.succeeded'],
      description: 'orders',
      metadata: { a: '1' },
      status: 'enabled',
      disabled_reason: null,
      livemode: false,
    });
    expect(created.id).toMatch(/^we_/);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(created.secret.slice(6), 'base64')).toHaveLength(32);

    const fetched = await ok(await get(`/v1/webhook_endpoints/${created.id}`));
    expect(fetched.secret).toBeUndefined();
    const { secret: _secret, ...shown } = created;
    expect(fetched).toEqual(shown);
    const listed = await ok(await get('/v1/webhook_endpoints'));
    expect(listed.data.map((e: { id: string }) => e.id)).toContain(created.id);
    expect(listed.data.every((e: { secret?: string }) => e.secret === undefined)).toBe(true);

    // Sealed at rest: the secret's text is nowhere in the table.
    const [row] = await t.admin<{ secret_ciphertext: Buffer }[]>`
      SELECT secret_ciphertext FROM webhook_endpoint_secrets WHERE endpoint_id = ${created.id}`;
    expect(row.secret_ciphertext.toString('latin1')).not.toContain(created.secret.slice(6, 20));
    expect(t.logs.join('')).not.toContain(created.secret.slice(6));
  });

  it('updates with PATCH, disables and enables again, and deletes', async () => {
    const created = await ok(await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL })));
    const patched = await call(t.app, tenant.testKey, 'PATCH', `/v1/webhook_endpoints/${created.id}`, {
      enabled_events: ['*'],
      description: 'all',
      disabled: true,
    });
    expect(await ok(patched)).toMatchObject({
      enabled_events: ['*'],
      description: 'all',
      status: 'disabled',
      disabled_reason: 'disabled_by_user',
    });
    const enabled = await ok(await post(`/v1/webhook_endpoints/${created.id}`, { disabled: false }));
    expect(enabled).toMatchObject({ status: 'enabled', disabled_reason: null });

    const deleted = await call(t.app, tenant.testKey, 'DELETE', `/v1/webhook_endpoints/${created.id}`);
    expect(await ok(deleted)).toEqual({ id: created.id, object: 'webhook_endpoint', deleted: true });
    expect((await get(`/v1/webhook_endpoints/${created.id}`)).statusCode).toBe(404);
  });

  it('rotates the secret: a new one in the answer, the old one kept for a while', async () => {
    const created = await ok(await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL })));
    const rotated = await ok(await post(`/v1/webhook_endpoints/${created.id}/rotate_secret`, { expires_in: 3600 }));
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(created.secret);
    const rows = await t.admin<{ expires_at: Date | null }[]>`
      SELECT expires_at FROM webhook_endpoint_secrets WHERE endpoint_id = ${created.id} ORDER BY id`;
    expect(rows).toHaveLength(2);
    expect(rows[0].expires_at!.getTime() - Date.now()).toBeGreaterThan(3500_000);
    expect(rows[1].expires_at).toBeNull();
  });

  it.each([
    [{ url: 'ftp://example.com/x' }, 'url_invalid'],
    [{ url: 'not a url' }, 'url_invalid'],
    [{ url: 'https://user:pw@93.184.215.14/' }, 'url_invalid'],
    [{ url: 'https://10.0.0.1/hook' }, 'url_not_allowed'],
    [{ url: 'https://169.254.169.254/latest/meta-data' }, 'url_not_allowed'],
    [{ url: 'https://[::1]/hook' }, 'url_not_allowed'],
    [{ url: 'https://[fd00:ec2::254]/hook' }, 'url_not_allowed'],
    [{ url: 'https://[::ffff:169.254.169.254]/hook' }, 'url_not_allowed'],
    [{ url: 'https://[64:ff9b::a9fe:a9fe]/hook' }, 'url_not_allowed'],
    [{ url: 'https://[2002:a9fe:a9fe::1]/hook' }, 'url_not_allowed'],
    [{ url: 'https://100.64.0.1/hook' }, 'url_not_allowed'],
    [{ url: 'https://224.0.0.1/hook' }, 'url_not_allowed'],
    [{ url: 'https://0.0.0.0/hook' }, 'url_not_allowed'],
    [{ url: 'https://198.18.0.1/hook' }, 'url_not_allowed'],
    [{ url: 'https://no-such-host.invalid/hook' }, 'url_not_allowed'],
    [{ enabled_events: ['Payment Succeeded'] }, 'event_type_invalid'],
    [{ enabled_events: ['payment.**'] }, 'event_type_invalid'],
    [{ enabled_events: [] }, 'parameter_invalid'],
    [{ colour: 'red' }, 'parameter_unknown'],
  ])('refuses %j with 400 %s', async (change, code) => {
    const res = await post('/v1/webhook_endpoints', { ...endpoint({ url: PUBLIC_URL }), ...change });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error' });
    if (code !== 'parameter_invalid') expect(res.json().error.code).toBe(code);
  });

  it('refuses a name that resolves to loopback unless the allow-list opens it', async () => {
    const res = await post('/v1/webhook_endpoints', endpoint({ url: 'http://localhost:9/hook' }));
    // localhost is 127.0.0.1 (allowed by this app's WEBHOOK_ALLOW_PRIVATE) and may also be ::1 (not allowed).
    expect([200, 400]).toContain(res.statusCode);
    const strict = await bootApp({});
    try {
      const refused = await call(
        strict.app,
        (await createTenant(strict.app)).testKey,
        'POST',
        '/v1/webhook_endpoints',
        {
          url: 'http://127.0.0.1:9/hook',
          enabled_events: ['*'],
        },
      );
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.code).toBe('url_not_allowed');
    } finally {
      await strict.close();
    }
  });

  it('requires https in live mode', async () => {
    const res = await post('/v1/webhook_endpoints', endpoint({ url: 'http://93.184.215.14/hooks' }), tenant.liveKey);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'url_invalid', param: 'url' });
    expect((await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL }), tenant.liveKey)).statusCode).toBe(200);
  });

  it('answers 401 without credentials, 403 without the scope, 404 for another tenant', async () => {
    const created = await ok(await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL })));
    const anonymous = await t.app.inject({ method: 'GET', url: '/v1/webhook_endpoints' });
    expect(anonymous.statusCode).toBe(401);

    const reader = await ok(await post('/v1/api_keys', { scopes: ['webhook_endpoints:read'] }));
    expect((await get('/v1/webhook_endpoints', reader.secret)).statusCode).toBe(200);
    const denied = await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL }), reader.secret);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe('missing_scope');
    const paymentsOnly = await ok(await post('/v1/api_keys', { scopes: ['payments:read'] }));
    expect((await get('/v1/webhook_endpoints', paymentsOnly.secret)).statusCode).toBe(403);

    for (const [method, url] of [
      ['GET', `/v1/webhook_endpoints/${created.id}`],
      ['PATCH', `/v1/webhook_endpoints/${created.id}`],
      ['DELETE', `/v1/webhook_endpoints/${created.id}`],
      ['POST', `/v1/webhook_endpoints/${created.id}/rotate_secret`],
      ['POST', `/v1/webhook_endpoints/${created.id}/test`],
      ['GET', `/v1/webhook_endpoints/${created.id}/deliveries`],
    ] as const) {
      const res = await call(t.app, other.testKey, method, url, method === 'PATCH' ? { description: 'x' } : undefined);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error.code).toBe('resource_missing');
    }
    const replay = await post(`/v1/webhook_endpoints/${created.id}/replay`, { since: 0 }, other.testKey);
    expect(replay.statusCode).toBe(404);
    // The live key of the same tenant is another scope too.
    expect((await get(`/v1/webhook_endpoints/${created.id}`, tenant.liveKey)).statusCode).toBe(404);
  });

  it('lists deliveries of an event and redelivers; another tenant sees neither', async () => {
    const created = await ok(await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL })));
    const test = await ok(await post(`/v1/webhook_endpoints/${created.id}/test`));
    expect(test).toMatchObject({ object: 'webhook_delivery', webhook_endpoint: created.id, status: 'pending' });
    const deliveries = await ok(await get(`/v1/events/${test.event}/deliveries`));
    expect(deliveries.data.map((d: { id: string }) => d.id)).toEqual([test.id]);
    const again = await ok(await post(`/v1/events/${test.event}/redeliver`));
    expect(again.data[0]).toMatchObject({ id: test.id, status: 'pending', attempt_count: 0 });
    expect((await get(`/v1/events/${test.event}/deliveries`, other.testKey)).statusCode).toBe(404);
    expect((await post(`/v1/events/${test.event}/redeliver`, undefined, other.testKey)).statusCode).toBe(404);
    const bad = await post(`/v1/webhook_endpoints/${created.id}/replay`, { since: 'yesterday' });
    expect(bad.statusCode).toBe(400);
    const badRotate = await post(`/v1/webhook_endpoints/${created.id}/rotate_secret`, { expires_in: -1 });
    expect(badRotate.statusCode).toBe(400);
    const badList = await get(`/v1/webhook_endpoints/${created.id}/deliveries?limit=0`);
    expect(badList.statusCode).toBe(400);
  });
});

describe('the fan-out queue', () => {
  it('holds an event from the commit that writes it until one fan-out takes it; a rolled-back one never', async () => {
    // A tenant of its own: the endpoints of the other tests would take its events too.
    const own = await createTenant(t.app, 'Fan-out queue tenant');
    const hook = await ok(
      await post('/v1/webhook_endpoints', endpoint({ url: PUBLIC_URL, enabled_events: ['*'] }), own.testKey),
    );
    const write = (sql: typeof t.admin, id: string) => sql`
      INSERT INTO events (id, tenant_id, livemode, type, object_id, data)
      VALUES (${id}, ${own.id}, false, 'payment.succeeded', 'pay_fan_out', '{"object": {}}'::json)`;
    await rolledBack(t.admin, (tx) => write(tx, 'evt_fan_out_rolled_back'));
    await t.admin.begin((tx) => write(tx as unknown as typeof t.admin, 'evt_fan_out_committed'));
    const test = await ok(await post(`/v1/webhook_endpoints/${hook.id}/test`, undefined, own.testKey));
    const ids = ['evt_fan_out_rolled_back', 'evt_fan_out_committed', test.event];
    const queued = async () =>
      (
        await t.admin<{ event_id: string }[]>`SELECT event_id FROM webhook_fan_out_queue WHERE event_id = ANY (${ids})`
      ).map((row) => row.event_id);
    expect(await queued()).toEqual(['evt_fan_out_committed']);

    const dispatcher = new WebhookDispatcher({ ...t.platform, log: t.app.log });
    expect(await dispatcher.fanOutOnce()).toBeGreaterThanOrEqual(1);
    expect(await queued()).toEqual([]);
    await dispatcher.fanOutOnce();
    const deliveries = await t.admin<{ event_id: string; endpoint_id: string }[]>`
      SELECT event_id, endpoint_id FROM webhook_deliveries WHERE event_id = ANY (${ids}) ORDER BY event_id`;
    expect(deliveries).toEqual(
      [
        { event_id: 'evt_fan_out_committed', endpoint_id: hook.id },
        { event_id: test.event, endpoint_id: hook.id },
      ].sort((a, b) => a.event_id.localeCompare(b.event_id)),
    );
  });
});
