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
});

const form = (fields: Record<string, string>, authorization?: string) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/oauth/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(authorization ? { authorization } : {}),
    },
    payload: new URLSearchParams({ grant_type: 'client_credentials', ...fields }).toString(),
  });

function expectEnvelope(res: Awaited<ReturnType<typeof form>>, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  const { error } = res.json();
  expect(error.code).toBe(code);
  expect(error.request_id).toBe(res.headers['request-id']);
  return error;
}

describe('the scope parameter (RFC 6749 §3.3)', () => {
  it('narrows the token to the scopes asked for', async () => {
    const res = await form({ client_secret: tenant.testKey, scope: 'payments:read  refunds:read' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().scope).toBe('payments:read refunds:read');
    const token = res.json().access_token;
    expect(await tokenWorks(token)).toBe(200);
    const write = await t.app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { authorization: `Bearer ${token}` },
      payload: { amount: 100, currency: 'usd' },
    });
    expect(write.statusCode, write.body).toBe(403);
    expect(write.json().error.code).toBe('missing_scope');
  });

  it("asking for more than the key's scopes is 400 invalid_scope", async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/api_keys',
      headers: { authorization: `Bearer ${tenant.testKey}` },
      payload: { scopes: ['payments:write'] },
    });
    const restricted = created.json().secret;
    // payments:write includes payments:read.
    expect((await form({ client_secret: restricted, scope: 'payments:read' })).statusCode).toBe(200);
    for (const scope of ['payments:write refunds:read', '*', 'no_such:scope']) {
      const error = expectEnvelope(await form({ client_secret: restricted, scope }), 400, 'invalid_scope');
      expect(error).toMatchObject({ type: 'invalid_request_error', param: 'scope' });
    }
  });

  it('without scope, the token has the key’s scopes', async () => {
    const res = await form({ client_secret: tenant.testKey });
    expect(res.json().scope).toBe('*');
  });
});

describe('a malformed Basic header is 400, never 500', () => {
  it.each([
    ['bad base64', 'Basic !!!notbase64!!!'],
    ['base64 of the wrong length', 'Basic abcde'],
    ['no colon', `Basic ${Buffer.from('just-a-secret').toString('base64')}`],
    ['bad percent-encoding', `Basic ${Buffer.from('ten_1:sk_test_%E0%A4%A').toString('base64')}`],
    ['nothing after Basic', 'Basic'],
  ])('%s', async (_name, authorization) => {
    const error = expectEnvelope(await form({}, authorization), 400, 'invalid_authorization_header');
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'Authorization' });
  });

  it('percent-encoded credentials are decoded', async () => {
    const encoded = Buffer.from(`${tenant.id}:${encodeURIComponent(tenant.testKey)}`).toString('base64');
    expect((await form({}, `Basic ${encoded}`)).statusCode).toBe(200);
  });
});
