import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  PLATFORM_KEY,
  TEST_CARDS,
  TestClock,
  type TestApp,
  type TestTenant,
} from './helpers.js';

let t: TestApp;
let tenant: TestTenant;
const clock = new TestClock();

beforeAll(async () => {
  t = await bootApp({}, undefined, { clock });
  tenant = await createTenant(t.app, 'Auth tenant');
});
afterAll(() => t.close());

type Response = Awaited<ReturnType<typeof call>>;

function expectError(response: Response, status: number, type: string, code?: string) {
  expect(response.statusCode, response.body).toBe(status);
  const { error } = response.json();
  expect(error.type).toBe(type);
  if (code) expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(error).toHaveProperty('param');
  expect(error.request_id).toBe(response.headers['request-id']);
}

const get = (authorization: string | undefined, url = '/v1/payments') =>
  t.app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });

async function ok(response: Response) {
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

async function newRestrictedKey(scopes: string[], key = tenant.testKey) {
  return ok(await call(t.app, key, 'POST', '/v1/api_keys', { scopes, name: 'probe' }));
}

describe('authentication', () => {
  it('a valid key is accepted (the 401s below are about the credential, not the endpoint)', async () => {
    expect((await get(`Bearer ${tenant.testKey}`)).statusCode).toBe(200);
    expect((await get(`bearer   ${tenant.testKey}  `)).statusCode).toBe(200);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['without Bearer', 'sk_test_abcdefghijklmnopqrstuvwx'],
    ['Basic with a malformed key', `Basic ${Buffer.from('sk_test_:').toString('base64')}`],
    [
      'Basic with an unknown key',
      `Basic ${Buffer.from('sk_test_abcdefghijklmnopqrstuvwxyz012345:').toString('base64')}`,
    ],
    ['Basic that is not base64', 'Basic !!!notbase64!!!'],
    ['Basic without a colon', `Basic ${Buffer.from('sk_test_abcdefghijklmnopqrstuvwx').toString('base64')}`],
    ['Basic with nothing', 'Basic'],
    ['Basic with an empty user', `Basic ${Buffer.from(':').toString('base64')}`],
    ['Bearer with nothing', 'Bearer '],
    ['two tokens', 'Bearer sk_test_abcdefghijklmnop sk_test_abcdefghijklmnop'],
    ['malformed key', 'Bearer not-a-key'],
    ['wrong prefix', 'Bearer pk_test_abcdefghijklmnopqrstuvwxyz'],
    ['unknown key', 'Bearer sk_test_abcdefghijklmnopqrstuvwxyz012345'],
    ['unknown live key', 'Bearer sk_live_abcdefghijklmnopqrstuvwxyz012345'],
    ['overlong key', `Bearer sk_test_${'a'.repeat(500)}`],
    ['garbage JWT', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrZXlfMSJ9.c2lnbmF0dXJl'],
    ['not even a JWT', 'Bearer eyyyyyyyyy'],
    [
      'unsigned JWT',
      'Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJrZXlfMSIsImlzcyI6InBheWZvcndhcmQiLCJhdWQiOiJwYXlmb3J3YXJkLWFwaSJ9.',
    ],
  ])('%s credential -> 401 authentication_error', async (_name, header) => {
    expectError(await get(header), 401, 'authentication_error', 'invalid_api_key');
  });

  // Stripe's convention, which its docs and libraries use: `curl -u sk_test_…:` sends the key as Basic auth's user.
  describe('HTTP Basic auth, the key as the username', () => {
    const basic = (user: string, password = '') => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

    it('is accepted as the same key: the same tenant, mode and answer as Bearer', async () => {
      const created = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 1234, currency: 'usd' });
      const { id } = created.json();
      const viaBasic = await get(basic(tenant.testKey), `/v1/payments/${id}`);
      expect(viaBasic.json()).toEqual((await get(`Bearer ${tenant.testKey}`, `/v1/payments/${id}`)).json());
      expect(viaBasic.json()).toMatchObject({ id, amount: 1234, livemode: false });
      expect((await get(`basic   ${Buffer.from(`${tenant.testKey}:`).toString('base64')}  `)).statusCode).toBe(200);
    });

    it("keeps a restricted key's scopes, and a revoked key is refused", async () => {
      const key = await newRestrictedKey(['payments:read']);
      expect((await get(basic(key.secret))).statusCode).toBe(200);
      expectError(await get(basic(key.secret), '/v1/balance'), 403, 'permission_error');
      await ok(await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`));
      expectError(await get(basic(key.secret)), 401, 'authentication_error', 'invalid_api_key');
    });

    it('refuses a password beside the key, or the key as the password: neither is how a key is sent', async () => {
      for (const header of [basic(tenant.testKey, 'x'), basic('', tenant.testKey), basic(tenant.id, tenant.testKey)]) {
        const response = await get(header);
        expectError(response, 401, 'authentication_error', 'invalid_api_key');
        expect(response.body).not.toContain(tenant.testKey);
      }
    });
  });

  it("a tenant's secret with one character changed is unknown", async () => {
    const last = tenant.testKey.at(-1) === 'A' ? 'B' : 'A';
    expectError(await get(`Bearer ${tenant.testKey.slice(0, -1)}${last}`), 401, 'authentication_error');
  });

  it('the platform key is not a tenant key, and a tenant key is not the platform key', async () => {
    expectError(await get(`Bearer ${PLATFORM_KEY}`), 403, 'permission_error', 'tenant_key_required');
    expectError(
      await call(t.app, tenant.testKey, 'POST', '/v1/tenants', { name: 'Nope' }),
      403,
      'permission_error',
      'platform_key_required',
    );
    expectError(await call(t.app, tenant.testKey, 'GET', `/v1/tenants/${tenant.id}`), 403, 'permission_error');
    expectError(
      await t.app.inject({ method: 'POST', url: '/v1/tenants', payload: { name: 'Nope' } }),
      401,
      'authentication_error',
    );
  });
});

describe('revoking and rolling', () => {
  it('a revoked key stops working at once', async () => {
    const key = await newRestrictedKey(['payments:read']);
    expect((await get(`Bearer ${key.secret}`)).statusCode).toBe(200);
    const revoked = await ok(await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`));
    expect(revoked).toMatchObject({ id: key.id, revoked: true });
    expect(revoked.secret).toBeUndefined();
    expectError(await get(`Bearer ${key.secret}`), 401, 'authentication_error');
  });

  it("the platform operator can revoke any tenant's key", async () => {
    const key = await newRestrictedKey(['payments:read']);
    await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/api_keys/${key.id}/revoke`));
    expectError(await get(`Bearer ${key.secret}`), 401, 'authentication_error');
  });

  it('roll with expires_in 0 ends the old key at once; the new key works', async () => {
    const key = await newRestrictedKey(['payments:read', 'payments:write']);
    const rolled = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/roll`, { expires_in: 0 }),
    );
    expect(rolled.id).not.toBe(key.id);
    expect(rolled.secret).toMatch(/^rk_test_/);
    expect(rolled.scopes).toEqual(['payments:read', 'payments:write']);
    expectError(await get(`Bearer ${key.secret}`), 401, 'authentication_error');
    expect((await get(`Bearer ${rolled.secret}`)).statusCode).toBe(200);
    // A rolled key cannot be rolled again into a second live replacement.
    expectError(
      await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/roll`, {}),
      400,
      'invalid_request_error',
      'api_key_inactive',
    );
  });

  it('roll with expires_in keeps the old key working until it expires', async () => {
    const key = await newRestrictedKey(['payments:read']);
    const rolled = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/roll`, { expires_in: 3600 }),
    );
    expect((await get(`Bearer ${key.secret}`)).statusCode).toBe(200);
    expect((await get(`Bearer ${rolled.secret}`)).statusCode).toBe(200);
    const list = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/api_keys?limit=100'));
    const old = list.data.find((k: { id: string }) => k.id === key.id);
    expect(old).toMatchObject({ rolled_to: rolled.id, revoked: false });
    expect(old.expires_at - rolled.created).toBeGreaterThanOrEqual(3599);
    expect(old.expires_at - rolled.created).toBeLessThanOrEqual(3601);
    // An hour later (on the clock the app judges expiry by), the old key is refused.
    clock.advance(3601_000);
    expectError(await get(`Bearer ${key.secret}`), 401, 'authentication_error');
    expect((await get(`Bearer ${rolled.secret}`)).statusCode).toBe(200);
  });

  it("rolling a tenant's default secret key gives a new sk_ secret with full access", async () => {
    const other = await createTenant(t.app, 'Roll tenant');
    const rolled = await ok(await call(t.app, other.testKey, 'POST', `/v1/api_keys/${other.testKeyId}/roll`, {}));
    expect(rolled.secret).toMatch(/^sk_test_/);
    expectError(await get(`Bearer ${other.testKey}`), 401, 'authentication_error');
    expect(
      (await call(t.app, rolled.secret, 'POST', '/v1/payments', { amount: 100, currency: 'usd' })).statusCode,
    ).toBe(200);
  });
});

describe('access tokens (client credentials)', () => {
  const exchange = (secret: string, grant = 'client_credentials') =>
    t.app.inject({ method: 'POST', url: '/v1/oauth/token', payload: { grant_type: grant, client_secret: secret } });

  it('exchanges a secret key for a JWT that works as Bearer until the key is revoked', async () => {
    const key = await newRestrictedKey(['payments:read', 'payments:write']);
    const token = await ok(await exchange(key.secret));
    expect(token).toMatchObject({ token_type: 'bearer', expires_in: 900, scope: 'payments:read payments:write' });
    expect(token.access_token).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    expect((await get(`Bearer ${token.access_token}`)).statusCode).toBe(200);
    const created = await call(t.app, token.access_token, 'POST', '/v1/payments', { amount: 100, currency: 'usd' });
    expect(created.statusCode).toBe(200);
    // The token carries the key's scopes, no more.
    expectError(await call(t.app, token.access_token, 'GET', '/v1/refunds'), 403, 'permission_error', 'missing_scope');

    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`));
    expectError(await get(`Bearer ${token.access_token}`), 401, 'authentication_error');
    expectError(await exchange(key.secret), 401, 'authentication_error');
  });

  it("a token acts in its key's tenant and mode", async () => {
    const token = await ok(await exchange(tenant.liveKey));
    const payment = await ok(
      await call(t.app, token.access_token, 'POST', '/v1/payments', { amount: 100, currency: 'usd' }),
    );
    expect(payment.livemode).toBe(true);
    const [row] = await t.admin<
      { tenant_id: string; livemode: boolean }[]
    >`SELECT tenant_id, livemode FROM payments WHERE id = ${payment.id}`;
    expect(row).toEqual({ tenant_id: tenant.id, livemode: true });
  });

  it('a tampered token is refused', async () => {
    const { access_token: token } = await ok(await exchange(tenant.testKey));
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'key_someone_else', scopes: ['*'] })).toString(
      'base64url',
    );
    expectError(await get(`Bearer ${header}.${forged}.${signature}`), 401, 'authentication_error');
    const flipped = signature.slice(0, -2) + (signature.endsWith('AA') ? 'BB' : 'AA');
    expectError(await get(`Bearer ${header}.${payload}.${flipped}`), 401, 'authentication_error');
  });

  it('refuses unknown secrets, tokens, the platform key and other grant types', async () => {
    expectError(await exchange('sk_test_abcdefghijklmnopqrstuvwxyz012345'), 401, 'authentication_error');
    const { access_token: token } = await ok(await exchange(tenant.testKey));
    // A real token is longer than any key, so it fails validation; a short one reaches the explicit refusal.
    const again = await exchange(token);
    expect(again.statusCode).toBe(400);
    expect(again.body).not.toContain('access_token');
    expectError(await exchange('eyJhbGciOiJIUzI1NiJ9.e30.c2ln'), 401, 'authentication_error', 'invalid_client');
    expectError(await exchange(PLATFORM_KEY), 401, 'authentication_error', 'invalid_client');
    expectError(await exchange(tenant.testKey, 'password'), 400, 'invalid_request_error');
  });
});

describe('restricted keys and scopes', () => {
  it('a payments:read key can list payments but not create them', async () => {
    const key = await newRestrictedKey(['payments:read']);
    expect(key.secret).toMatch(/^rk_test_/);
    expect(key.type).toBe('restricted');
    expect((await get(`Bearer ${key.secret}`)).statusCode).toBe(200);
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd' }),
    );
    expect((await call(t.app, key.secret, 'GET', `/v1/payments/${payment.id}`)).statusCode).toBe(200);
    const before = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenant.id}`;
    const refused = await call(t.app, key.secret, 'POST', '/v1/payments', {
      amount: 100,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expectError(refused, 403, 'permission_error', 'missing_scope');
    const after = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenant.id}`;
    expect(after[0].count).toBe(before[0].count);
    for (const [method, url, body] of [
      ['POST', `/v1/payments/${payment.id}/cancel`, {}],
      ['POST', '/v1/payment_methods', card(TEST_CARDS.visa)],
      ['GET', '/v1/payment_methods'],
      ['GET', '/v1/refunds'],
      ['GET', '/v1/events'],
      ['GET', '/v1/api_keys'],
    ] as const) {
      expectError(await call(t.app, key.secret, method, url, body), 403, 'permission_error');
    }
  });

  it('a restricted key cannot mint keys broader than itself or manage keys', async () => {
    const manager = await newRestrictedKey(['api_keys:write', 'payments:read']);
    expectError(
      await call(t.app, manager.secret, 'POST', '/v1/api_keys', { scopes: ['payments:write'] }),
      403,
      'permission_error',
    );
    const narrower = await ok(await call(t.app, manager.secret, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }));
    expect(narrower.scopes).toEqual(['payments:read']);
    const reader = await newRestrictedKey(['payments:read']);
    expectError(
      await call(t.app, reader.secret, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }),
      403,
      'permission_error',
    );
    expectError(
      await call(t.app, reader.secret, 'POST', `/v1/api_keys/${reader.id}/roll`, {}),
      403,
      'permission_error',
    );
    expectError(
      await call(t.app, reader.secret, 'POST', `/v1/api_keys/${tenant.testKeyId}/revoke`),
      403,
      'permission_error',
    );
    expect((await get(`Bearer ${tenant.testKey}`)).statusCode).toBe(200);
  });

  it('write scope implies read of the same resource only', async () => {
    const key = await newRestrictedKey(['refunds:write']);
    expect((await call(t.app, key.secret, 'GET', '/v1/refunds')).statusCode).toBe(200);
    expectError(await call(t.app, key.secret, 'GET', '/v1/payments'), 403, 'permission_error');
  });
});

describe('key management never escalates', () => {
  it("a restricted key with api_keys:write cannot roll or revoke the tenant's secret key", async () => {
    const owner = await createTenant(t.app, 'Escalation tenant');
    const manager = await newRestrictedKey(['api_keys:write', 'payments:read'], owner.testKey);
    for (const action of ['roll', 'revoke']) {
      const refused = await call(t.app, manager.secret, 'POST', `/v1/api_keys/${owner.testKeyId}/${action}`, {});
      expectError(refused, 403, 'permission_error', 'secret_key_required');
      expect(refused.body).not.toMatch(/sk_test_/);
    }
    // Through an access token of the same key too.
    const token = await ok(
      await t.app.inject({
        method: 'POST',
        url: '/v1/oauth/token',
        payload: { grant_type: 'client_credentials', client_secret: manager.secret },
      }),
    );
    expectError(
      await call(t.app, token.access_token, 'POST', `/v1/api_keys/${owner.testKeyId}/roll`, {}),
      403,
      'permission_error',
      'secret_key_required',
    );
    // The secret key is untouched: not rolled, not revoked, still the only sk_ key.
    expect((await get(`Bearer ${owner.testKey}`)).statusCode).toBe(200);
    const [row] = await t.admin<{ revoked_at: Date | null; rolled_to: string | null }[]>`
      SELECT revoked_at, rolled_to FROM api_keys WHERE id = ${owner.testKeyId}`;
    expect(row).toEqual({ revoked_at: null, rolled_to: null });
  });

  it('a caller rolls or revokes only keys whose scopes are a subset of its own', async () => {
    const manager = await newRestrictedKey(['api_keys:write', 'payments:write']);
    const broader = await newRestrictedKey(['payments:read', 'refunds:write']);
    for (const action of ['roll', 'revoke'])
      expectError(
        await call(t.app, manager.secret, 'POST', `/v1/api_keys/${broader.id}/${action}`, {}),
        403,
        'permission_error',
        'missing_scope',
      );
    expect((await get(`Bearer ${broader.secret}`)).statusCode).toBe(200);

    // payments:write includes payments:read, so a payments:read key is within reach.
    const narrower = await newRestrictedKey(['payments:read']);
    const rolled = await ok(await call(t.app, manager.secret, 'POST', `/v1/api_keys/${narrower.id}/roll`, {}));
    expect(rolled).toMatchObject({ type: 'restricted', scopes: ['payments:read'] });
    expect(rolled.secret).toMatch(/^rk_test_/);
    await ok(await call(t.app, manager.secret, 'POST', `/v1/api_keys/${rolled.id}/revoke`, {}));
    expectError(await get(`Bearer ${rolled.secret}`), 401, 'authentication_error');
  });

  it('a full secret key and the operator may still roll a secret key', async () => {
    const owner = await createTenant(t.app, 'Operator roll tenant');
    const rolled = await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/api_keys/${owner.testKeyId}/roll`, {}));
    expect(rolled.secret).toMatch(/^sk_test_/);
    const again = await ok(await call(t.app, rolled.secret, 'POST', `/v1/api_keys/${rolled.id}/roll`, {}));
    expect(again.secret).toMatch(/^sk_test_/);
  });
});

describe('tenants and secrets', () => {
  it('the platform key creates a tenant whose sk_test_/sk_live_ secrets are shown once and stored only as a hash', async () => {
    const response = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'Secret keeper' });
    const created = await ok(response);
    const { test, live } = created.secret_keys;
    expect(test.secret).toMatch(/^sk_test_[A-Za-z0-9_-]{16,}$/);
    expect(live.secret).toMatch(/^sk_live_[A-Za-z0-9_-]{16,}$/);
    expect(test).toMatchObject({ livemode: false, type: 'secret' });
    expect(live).toMatchObject({ livemode: true, type: 'secret' });
    expect(
      (await call(t.app, test.secret, 'POST', '/v1/payments', { amount: 100, currency: 'usd' })).json().livemode,
    ).toBe(false);
    expect(
      (await call(t.app, live.secret, 'POST', '/v1/payments', { amount: 100, currency: 'usd' })).json().livemode,
    ).toBe(true);

    // Never shown again.
    const retrieved = await ok(await call(t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${created.id}`));
    expect(retrieved.secret_keys).toBeUndefined();
    for (const key of [test.secret, live.secret]) {
      const listed = await call(t.app, key, 'GET', '/v1/api_keys?limit=100');
      expect(listed.statusCode).toBe(200);
      expect(listed.body).not.toContain(test.secret);
      expect(listed.body).not.toContain(live.secret);
      expect(listed.body).not.toContain(key.slice(8, -4));
    }

    // The database holds a SHA-256 of each secret and nothing from which the secret can be read.
    const rows = await t.admin<{ id: string; key_hash: Buffer; as_text: string }[]>`
      SELECT id, key_hash, (k.*)::text AS as_text FROM api_keys k
      WHERE tenant_id = ${created.id} AND kind <> 'publishable'`;
    expect(rows).toHaveLength(2);
    for (const { id, secret } of [test, live]) {
      const row = rows.find((r) => r.id === id)!;
      expect(Buffer.compare(row.key_hash, createHash('sha256').update(secret).digest())).toBe(0);
      const body = secret.slice(8);
      for (const needle of [
        secret,
        body,
        body.slice(0, 16),
        Buffer.from(secret).toString('hex'),
        Buffer.from(secret).toString('base64'),
      ]) {
        expect(row.as_text).not.toContain(needle);
      }
    }
    // And no other table holds it either (the tenant creation was not stored anywhere).
    const columns = await t.admin<{ table_name: string; column_name: string }[]>`
      SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')`;
    for (const { table_name, column_name } of columns) {
      const hits = await t.admin`
        SELECT 1 FROM ${t.admin(table_name)}
        WHERE ${t.admin(column_name)}::text LIKE ${'%' + test.secret.slice(8) + '%'} OR ${t.admin(column_name)}::text LIKE ${'%' + live.secret.slice(8) + '%'} LIMIT 1`;
      expect(hits, `${table_name}.${column_name}`).toHaveLength(0);
    }
  });

  it('tenant creation is for the platform key only, and validates its body', async () => {
    expectError(
      await call(t.app, tenant.liveKey, 'POST', '/v1/tenants', { name: 'x' }),
      403,
      'permission_error',
      'platform_key_required',
    );
    expectError(
      await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', {}),
      400,
      'invalid_request_error',
      'parameter_missing',
    );
    expectError(
      await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'x', processors: ['sim_nope'] }),
      400,
      'invalid_request_error',
    );
  });
});
