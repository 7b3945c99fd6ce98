import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, PLATFORM_KEY, type TestApp, type TestTenant } from './helpers.js';
import { waitFor } from './process.js';

/*
 * Two API processes on one database, as in production behind a load balancer. Their key caches live
 * for an hour here, and every test keeps a control key in B's cache, expired directly in the database
 * (which sends no notification): B accepting the control after refusing the revoked key proves the
 * refusal came from the notification, not from a cache entry running out.
 */
const LONG_CACHE = { API_KEY_CACHE_TTL_MS: String(60 * 60 * 1000) };
let a: TestApp;
let b: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [a, b] = await Promise.all([bootApp(LONG_CACHE), bootApp(LONG_CACHE)]);
  tenant = await createTenant(a.app, 'Revocation tenant');
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

const status = async (app: TestApp, key: string) => (await call(app.app, key, 'GET', '/v1/payments')).statusCode;

async function restrictedKey(scopes = ['payments:read']) {
  const response = await call(a.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { id: string; secret: string };
}

/** A key B has cached, and then expired behind its back: B accepts it only while its cache holds it. */
async function cachedControl() {
  const control = await restrictedKey();
  expect(await status(b, control.secret)).toBe(200);
  await a.admin`UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE id = ${control.id}`;
  expect(await status(b, control.secret)).toBe(200);
  return control;
}

async function warm(key: { id: string; secret: string }) {
  expect(await status(b, key.secret)).toBe(200);
}

// A deadline far above the 1 s promised: the machine is shared and slow, and a cached key would stay
// accepted for the hour-long TTL, so the test still tells the two apart.
const refusedByB = (secret: string, what: string) =>
  waitFor(async () => (await status(b, secret)) === 401, 15_000, what);

describe('a revoked or rolled key stops working on every API process', () => {
  it('revoke through A, B refuses the key it had cached', async () => {
    const control = await cachedControl();
    const key = await restrictedKey();
    await warm(key);
    const revoked = await call(a.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`);
    expect(revoked.statusCode).toBe(200);
    await refusedByB(key.secret, 'B to refuse the revoked key');
    expect(await status(a, key.secret)).toBe(401);
    expect(await status(b, control.secret)).toBe(200);
  });

  it('roll through A (expires_in 0), B refuses the old key and accepts the new one', async () => {
    const control = await cachedControl();
    const key = await restrictedKey();
    await warm(key);
    const rolled = await call(a.app, PLATFORM_KEY, 'POST', `/v1/api_keys/${key.id}/roll`, { expires_in: 0 });
    expect(rolled.statusCode).toBe(200);
    await refusedByB(key.secret, 'B to refuse the rolled key');
    expect(await status(b, rolled.json().secret)).toBe(200);
    expect(await status(b, control.secret)).toBe(200);
  });

  it("a token exchanged for the key stops working on B too (it is checked against the key's record)", async () => {
    const control = await cachedControl();
    const key = await restrictedKey();
    const exchanged = await b.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      payload: { grant_type: 'client_credentials', client_secret: key.secret },
    });
    const token = exchanged.json().access_token as string;
    expect(await status(b, token)).toBe(200);
    await call(a.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`);
    await refusedByB(token, "B to refuse the revoked key's token");
    expect(await status(b, control.secret)).toBe(200);
  });

  it('B listens again after losing its listening connection', async () => {
    const listeners = () =>
      a.admin<{ pid: number }[]>`
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'payforward-listen' AND query ILIKE 'listen%'`;
    const before = await listeners();
    expect(before.length).toBeGreaterThanOrEqual(2);
    await a.admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'payforward-listen'`;
    // Both apps reconnect by themselves: two new listening backends, none of the killed ones.
    await waitFor(
      async () => {
        const now = (await listeners()).map((row) => row.pid);
        return now.length >= 2 && now.every((pid) => !before.some((row) => row.pid === pid));
      },
      20_000,
      'the listeners to reconnect',
    );
    // Those new listeners may be other apps' (every app on the run's database listens): B is back once it caches
    // again, which it does only with its LISTEN in place (and it forgets its cache when that happens).
    const control = await waitFor(() => cachedControl(), 20_000, 'B to cache keys again');
    const key = await restrictedKey();
    await warm(key);
    await call(a.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`);
    await refusedByB(key.secret, 'B to refuse a key revoked after the reconnection');
    expect(await status(b, control.secret)).toBe(200);
  });
});
