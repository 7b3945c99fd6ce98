import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootWithTenants, call, ok, TEST_CARDS, TestClock, type TestApp, type TestTenant } from './helpers.js';
import { asMember, newMember } from './team.js';

// Stripe's API takes form-encoded parameters in bracket notation, and so do its clients and every curl example of it:
// the same routes answer them as they answer JSON, with the same validation and errors.
let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  [t, tenant, other] = await bootWithTenants('Form bodies', 'Form bodies, another tenant');
});
afterAll(() => t.close());

const expYear = String(new Date().getUTCFullYear() + 3);

const formPost = (url: string, body: string, key = tenant.testKey, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: 'POST',
    url,
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/x-www-form-urlencoded',
      ...headers,
    },
    payload: body,
  });

/** What `curl -d amount=2000 -d currency=usd -d "payment_method[card][number]=…"` sends. */
const paymentForm = (amount: string, extra: string[] = []) =>
  [
    `amount=${amount}`,
    'currency=usd',
    'confirm=true',
    'payment_method[type]=card',
    `payment_method[card][number]=${TEST_CARDS.visa}`,
    'payment_method[card][exp_month]=12',
    `payment_method[card][exp_year]=${expYear}`,
    'payment_method[card][cvc]=123',
    ...extra,
  ].join('&');

/** The tenant's payments in both modes, as the database has them. */
async function paymentCount() {
  const [row] = await t.admin<{ n: number }[]>`SELECT count(*)::int AS n FROM payments WHERE tenant_id = ${tenant.id}`;
  return row.n;
}

function expectInvalid(response: Awaited<ReturnType<typeof formPost>>, code: string, param: string | null) {
  expect(response.statusCode, response.body).toBe(400);
  const { error } = response.json();
  expect(error).toMatchObject({ type: 'invalid_request_error', code, param });
  expect(typeof error.message).toBe('string');
  return error;
}

describe('form-encoded bodies', () => {
  it('create and confirm a payment, nested card and metadata included, typed as JSON would be', async () => {
    const response = await formPost(
      '/v1/payments',
      paymentForm('2000', ['metadata[order_id]=6735', 'metadata[note]=a%20b%26c', 'description=Two%20mugs']),
    );
    const payment = await ok(response);
    expect(payment).toMatchObject({
      amount: 2000,
      amount_received: 2000,
      currency: 'usd',
      status: 'succeeded',
      description: 'Two mugs',
      metadata: { order_id: '6735', note: 'a b&c' },
    });
    const stored = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(stored).toEqual(payment);
    const [row] = await t.admin<{ amount: string; tenant_id: string }[]>`
      SELECT amount::text, tenant_id FROM payments WHERE id = ${payment.id}`;
    expect(row).toEqual({ amount: '2000', tenant_id: tenant.id });
    // The card number came as form text: it reaches no log line, as in JSON.
    expect(t.logs.join('\n')).not.toContain(TEST_CARDS.visa);
  });

  it('a capture_method=manual payment, captured by a form with its amount', async () => {
    const authorized = await ok(await formPost('/v1/payments', paymentForm('5000', ['capture_method=manual'])));
    expect(authorized).toMatchObject({ status: 'requires_capture', amount_capturable: 5000 });
    const captured = await ok(await formPost(`/v1/payments/${authorized.id}/capture`, 'amount_to_capture=3000'));
    expect(captured).toMatchObject({ status: 'succeeded', amount_received: 3000 });
    const refund = await ok(await formPost('/v1/refunds', `payment=${authorized.id}&amount=1000`));
    expect(refund).toMatchObject({ amount: 1000, payment: authorized.id, status: 'succeeded' });
  });

  it('replays with the same Idempotency-Key, and a JSON retry of the same parameters is the same request', async () => {
    const key = `form-${Date.now()}`;
    const first = await ok(
      await formPost('/v1/payments', 'amount=1234&currency=usd', tenant.testKey, { 'idempotency-key': key }),
    );
    const again = await formPost('/v1/payments', 'amount=1234&currency=usd', tenant.testKey, {
      'idempotency-key': key,
    });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first);
    const asJson = await call(
      t.app,
      tenant.testKey,
      'POST',
      '/v1/payments',
      { amount: 1234, currency: 'usd' },
      {
        'idempotency-key': key,
      },
    );
    expect(asJson.json()).toEqual(first);
    const changed = await formPost('/v1/payments', 'amount=1235&currency=usd', tenant.testKey, {
      'idempotency-key': key,
    });
    expect(changed.statusCode).toBe(409);
    expect(changed.json().error.type).toBe('idempotency_error');
    const [count] = await t.admin<{ n: number }[]>`
      SELECT count(*)::int AS n FROM payments WHERE tenant_id = ${tenant.id} AND amount = 1234`;
    expect(count.n).toBe(1);
  });

  it("another tenant's payment is a 404 by form as by JSON", async () => {
    const payment = await ok(await formPost('/v1/payments', 'amount=700&currency=usd'));
    const response = await formPost(`/v1/payments/${payment.id}/cancel`, '', other.testKey);
    expect(response.statusCode).toBe(404);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
  });

  it.each([
    ['a word for an amount', 'amount=abc&currency=usd', 'parameter_invalid', 'amount'],
    ['an empty amount', 'amount=&currency=usd', 'parameter_invalid', 'amount'],
    ['a fraction', 'amount=12.5&currency=usd', 'parameter_invalid', 'amount'],
    ['a boolean that is not one', 'amount=100&currency=usd&confirm=maybe', 'parameter_invalid', 'confirm'],
    ['a repeated scalar', 'amount=100&amount=200&currency=usd', 'parameter_invalid', 'amount'],
    ['an unknown field', 'amount=100&currency=usd&evil=1', 'parameter_unknown', 'evil'],
    ['metadata as text', 'amount=100&currency=usd&metadata=x', 'parameter_invalid', 'metadata'],
  ])('%s is a 400 naming the parameter, and writes nothing', async (_name, body, code, param) => {
    const before = await paymentCount();
    const error = expectInvalid(await formPost('/v1/payments', body), code, param);
    expect(error.code).toBe(code);
    const after = await paymentCount();
    expect(after).toBe(before);
  });

  it.each([
    ['nesting deeper than five', 'amount=100&currency=usd&metadata[a][b][c][d][e][f]=1'],
    ['more than a thousand parameters', Array.from({ length: 1001 }, (_, i) => `metadata[k${i}]=v`).join('&')],
    ['an array past a hundred items', 'amount=100&currency=usd&expand[101]=x'],
  ])('%s is a 400 invalid_form_body', async (_name, body) => {
    expectInvalid(await formPost('/v1/payments', body), 'invalid_form_body', null);
  });

  // A page on another site can make a browser post a form (no CORS preflight) but cannot add an Authorization header.
  // A route anyone may call takes JSON alone, a key beside the form or not: the document lists no form there either.
  it('needs an Authorization header: a form to sign in, or with a cookie alone, is refused as before (415)', async () => {
    for (const headers of [{}, { cookie: 'pf_session=anything' }, { authorization: `Bearer ${tenant.testKey}` }]) {
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: 'email=owner%40example.com&password=correct-horse',
      });
      expect(response.statusCode, response.body).toBe(415);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_media_type' });
    }
    // A signed-in member's own request, CSRF token and all: the dashboard sends JSON, and nothing else is taken.
    const member = await newMember(t.app, new TestClock(), tenant.liveKey, 'admin');
    const before = await paymentCount();
    const payments = await t.app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: `pf_session=${member.cookie}`,
        'x-csrf-token': member.csrf,
      },
      payload: 'amount=100&currency=usd',
    });
    expect(payments.statusCode, payments.body).toBe(415);
    const after = await paymentCount();
    expect(after).toBe(before);
    expect((await asMember(t.app, member, 'POST', '/v1/payments', { amount: 100, currency: 'usd' })).statusCode).toBe(
      200,
    );
  });

  it('takes the key as Basic auth too: curl -u sk_test_…: -d amount=…', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: {
        authorization: `Basic ${Buffer.from(`${tenant.testKey}:`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: 'amount=4321&currency=eur',
    });
    expect(await ok(response)).toMatchObject({ amount: 4321, currency: 'eur', livemode: false });
  });

  it('are listed in the OpenAPI document wherever they are taken, and only there', async () => {
    const document = await ok(await t.app.inject({ method: 'GET', url: '/openapi.json' }));
    const mediaTypes = (path: string) => Object.keys(document.paths[path].post.requestBody.content).sort();
    const both = ['application/json', 'application/x-www-form-urlencoded'];
    expect(mediaTypes('/v1/payments')).toEqual(both);
    expect(mediaTypes('/v1/refunds')).toEqual(both);
    expect(mediaTypes('/v1/oauth/token')).toEqual(both);
    expect(mediaTypes('/v1/sessions')).toEqual(['application/json']);
    // Written once, among the shared schemas, and referred to by both media types.
    const content = document.paths['/v1/payments'].post.requestBody.content;
    const ref = { $ref: '#/components/schemas/PostPaymentsBody' };
    expect(content['application/json'].schema).toEqual(ref);
    expect(content['application/x-www-form-urlencoded'].schema).toEqual(ref);
    expect(document.components.schemas.PostPaymentsBody.required).toEqual(['amount', 'currency']);
  });

  // A route's coercing validator is compiled on its first form body: every route listed must compile it and answer.
  it('every route the document lists them on answers a form with a 2xx or a 4xx envelope, never a 5xx', async () => {
    const document = await ok(await t.app.inject({ method: 'GET', url: '/openapi.json' }));
    const listed = Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([, operation]) => operation.requestBody?.content?.['application/x-www-form-urlencoded'])
        .map(([method]) => [method.toUpperCase(), path.replace(/\{[^}]+\}/g, 'unknown_id')] as const),
    );
    expect(listed.length).toBeGreaterThan(20);
    for (const [method, url] of listed) {
      const response = await t.app.inject({
        method: method as 'POST',
        url,
        headers: { authorization: `Bearer ${tenant.testKey}`, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'unknown_field=1&metadata[k]=v',
      });
      expect(response.statusCode, `${method} ${url}: ${response.body}`).toBeLessThan(500);
      if (response.statusCode >= 400) expect(response.json().error).toHaveProperty('code');
    }
  });

  it('never makes __proto__ or constructor keys, and pollutes nothing', async () => {
    const response = await formPost(
      '/v1/payments',
      'amount=100&currency=usd&__proto__[polluted]=1&constructor[prototype][polluted]=1&metadata[__proto__][x]=1',
    );
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().metadata).toEqual({});
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('takes a card number only where the schema has one: a PAN in the wrong field is refused and not echoed', async () => {
    const response = await formPost('/v1/payments', `amount=100&currency=usd&description[x]=${TEST_CARDS.visa}`);
    expectInvalid(response, 'parameter_invalid', 'description');
    expect(response.body).not.toContain(TEST_CARDS.visa);
  });

  it('any form text gets a 200 or a 4xx with the error object, never a 5xx (property)', async () => {
    const token = fc.oneof(
      fc.constantFrom('amount', 'currency', 'confirm', 'metadata', 'payment_method', 'card', 'number', '__proto__', ''),
      fc.string({ maxLength: 6 }),
    );
    const key = fc
      .tuple(token, fc.array(fc.oneof(token, fc.constant('')), { maxLength: 7 }))
      .map(([head, rest]) => head + rest.map((part) => `[${part}]`).join(''));
    const value = fc.oneof(
      fc.constantFrom('100', '-1', '1e3', 'usd', 'true', '', '%', '%E0%A4%A', '%00', TEST_CARDS.visa),
      fc.string({ maxLength: 10 }),
    );
    const form = fc
      .array(fc.tuple(key, value), { maxLength: 12 })
      .map((pairs) =>
        pairs.map(([k, v]) => `${encodeURIComponent(k).replace(/%5B/g, '[').replace(/%5D/g, ']')}=${v}`).join('&'),
      );
    await fc.assert(
      fc.asyncProperty(form, async (body) => {
        const response = await formPost('/v1/payments', body);
        expect(response.statusCode, `${body} -> ${response.body}`).toBeLessThan(500);
        if (response.statusCode !== 200) {
          const { error } = response.json();
          expect(error).toHaveProperty('type');
          expect(error).toHaveProperty('code');
          expect(error).toHaveProperty('param');
          expect(response.body).not.toContain(TEST_CARDS.visa);
        }
      }),
      { numRuns: 150 },
    );
  });
});
