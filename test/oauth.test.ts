import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, createTenant, type TestApp, type TestTenant } from './helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

const tokenWorks = async (token: string) =>
  (await t.app.inject({ method: 'GET', url: '/v1/payments', headers: { authorization: `Bearer ${token}` } }))
    .statusCode;

describe('POST /v1/oauth/token as standard OAuth clients send it', () => {
  it('accepts a form-encoded body', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'client_credentials', client_secret: tenant.testKey }).toString(),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    expect(await tokenWorks(res.json().access_token)).toBe(200);
  });

  it('accepts the key as the password of HTTP Basic auth', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${tenant.id}:${tenant.testKey}`).toString('base64')}`,
      },
      payload: 'grant_type=client_credentials',
    });
    expect(res.statusCode).toBe(200);
    expect(await tokenWorks(res.json().access_token)).toBe(200);
  });

  it('refuses a request without any credential, and unknown form fields, in the error envelope', async () => {
    const missing = await t.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=client_credentials',
    });
    expect(missing.statusCode).toBe(401);
    expect(missing.json().error).toMatchObject({ type: 'authentication_error', code: 'invalid_client' });
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=client_credentials&client_secret=${tenant.testKey}&evil=1`,
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatchObject({ code: 'parameter_unknown', param: 'evil' });
  });

  it('keeps form bodies out of every other endpoint (415)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { authorization: `Bearer ${tenant.testKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'amount=100&currency=usd',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('unsupported_media_type');
  });
});
