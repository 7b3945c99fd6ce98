import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import {
  bootApp,
  bootWithTenants,
  call,
  card,
  createTenant,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { loadConfig } from '../src/config.js';
import { idFloor, newId } from '../src/lib/ids.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Errors tenant');
});
afterAll(() => t.close());

type Response = Awaited<ReturnType<typeof call>>;

/** The one error envelope, with request_id matching the request-id header. */
function expectEnvelope(response: Response, status: number, code: string, param?: string | null) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const { error, ...rest } = response.json();
  expect(rest).toEqual({});
  expect(typeof error.type).toBe('string');
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(error).toHaveProperty('param');
  if (param !== undefined) expect(error.param).toBe(param);
  expect(error.request_id).toMatch(/^req_/);
  expect(error.request_id).toBe(response.headers['request-id']);
  return error;
}

const raw = (
  payload: string | Buffer,
  headers: Record<string, string> = {},
  url = '/v1/payments',
  method: InjectOptions['method'] = 'POST',
) =>
  t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${tenant.testKey}`, 'content-type': 'application/json', ...headers },
    payload,
  });

describe('request bodies', () => {
  it.each([
    ['truncated', '{"amount": 100, "currency": "usd"'],
    ['trailing comma', '{"amount": 100,}'],
    ['single quotes', "{'amount': 100}"],
    ['bare word', 'amount=100&currency=usd'],
    ['two documents', '{}{}'],
    ['NaN', '{"amount": NaN}'],
    ['prototype pollution', '{"__proto__": {"admin": true}, "amount": 100, "currency": "usd"}'],
    ['constructor pollution', '{"constructor": {"prototype": {"admin": true}}}'],
  ])('malformed JSON (%s) -> 400 invalid_json', async (_name, payload) => {
    const error = expectEnvelope(await raw(payload), 400, 'invalid_json', null);
    expect(error.type).toBe('invalid_request_error');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('an empty body with content-type application/json -> 400 invalid_json', async () => {
    expectEnvelope(await raw(''), 400, 'invalid_json');
  });

  it('a JSON body that is not an object -> 400 parameter_invalid', async () => {
    for (const payload of ['[]', '"text"', '42', 'null', 'true']) {
      const error = expectEnvelope(await raw(payload, {}, '/v1/payment_methods'), 400, 'parameter_invalid');
      expect(error.type).toBe('invalid_request_error');
    }
  });

  it('a body over BODY_LIMIT_BYTES -> 413 body_too_large', async () => {
    expect(t.config.bodyLimitBytes).toBe(64 * 1024);
    const payload = JSON.stringify({ amount: 100, currency: 'usd', description: 'x'.repeat(t.config.bodyLimitBytes) });
    const error = expectEnvelope(await raw(payload), 413, 'body_too_large');
    expect(error.type).toBe('invalid_request_error');
    // Just under the limit is parsed (and then judged on its content).
    const under = JSON.stringify({
      amount: 100,
      currency: 'usd',
      metadata: { a: 'x'.repeat(t.config.bodyLimitBytes - 100) },
    });
    expectEnvelope(await raw(under), 400, 'parameter_invalid', 'metadata[a]');
  });

  it('a smaller BODY_LIMIT_BYTES is honoured', async () => {
    const small = await bootApp({ BODY_LIMIT_BYTES: '2048' });
    try {
      const other = await createTenant(small.app, 'Small bodies');
      const response = await call(small.app, other.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        description: 'y'.repeat(3000),
      });
      expect(response.statusCode).toBe(413);
      expect(response.json().error.code).toBe('body_too_large');
    } finally {
      await small.close();
    }
  });

  it.each(['text/plain', 'multipart/form-data; boundary=x', 'application/xml'])(
    'content-type %s -> 415',
    async (type) => {
      const error = expectEnvelope(
        await raw('{"amount": 100, "currency": "usd"}', { 'content-type': type }),
        415,
        'unsupported_media_type',
      );
      expect(error.type).toBe('invalid_request_error');
    },
  );

  it('JSON text sent as a form is read as a form, not as JSON: its amount is missing (400)', async () => {
    const error = expectEnvelope(
      await raw('{"amount": 100, "currency": "usd"}', { 'content-type': 'application/x-www-form-urlencoded' }),
      400,
      'parameter_missing',
    );
    expect(error.param).toBe('amount');
  });

  it('application/json with a charset parameter is accepted', async () => {
    const response = await raw('{"amount": 100, "currency": "usd"}', {
      'content-type': 'application/json; charset=utf-8',
    });
    expect(response.statusCode).toBe(200);
  });
});

describe('routes', () => {
  it.each([
    ['GET', '/v1/nothing_here'],
    ['POST', '/v1/payments/pay_123/explode'],
    ['DELETE', '/v1/payments'],
    ['PUT', '/v1/payments/pay_123'],
    ['GET', '/v2/payments'],
  ] as const)('unknown route %s %s with a valid key -> 404 resource_missing', async (method, url) => {
    const response = await call(t.app, tenant.testKey, method, url);
    const error = expectEnvelope(response, 404, 'resource_missing', null);
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain(method);
  });

  it('an unknown /v1 route still requires a key', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/v1/nothing_here' });
    expectEnvelope(response, 401, 'invalid_api_key');
  });

  it('an unknown object id -> 404 resource_missing naming the id', async () => {
    const error = expectEnvelope(
      await call(t.app, tenant.testKey, 'GET', '/v1/payments/pay_doesnotexist'),
      404,
      'resource_missing',
      'id',
    );
    expect(error.message).toContain('pay_doesnotexist');
    expectEnvelope(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${'p'.repeat(65)}`), 404, 'resource_missing');
  });
});

describe('parameters', () => {
  it('unknown parameter -> 400 parameter_unknown naming it', async () => {
    const error = expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', colour: 'red' }),
      400,
      'parameter_unknown',
      'colour',
    );
    expect(error.message).toContain('colour');
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa, { pin: '1234' })),
      400,
      'parameter_unknown',
      'card[pin]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: { ...card(TEST_CARDS.visa), extra: 1 },
      }),
      400,
      'parameter_unknown',
      'payment_method[extra]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'GET', '/v1/payments?colour=red'),
      400,
      'parameter_unknown',
      'colour',
    );
  });

  it('missing required parameter -> 400 parameter_missing naming it', async () => {
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { currency: 'usd' }),
      400,
      'parameter_missing',
      'amount',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100 }),
      400,
      'parameter_missing',
      'currency',
    );
    expectEnvelope(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', {}), 400, 'parameter_missing', 'payment');
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', {
        type: 'card',
        card: { number: TEST_CARDS.visa, exp_year: 2040 },
      }),
      400,
      'parameter_missing',
      'card[exp_month]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: { type: 'card' },
      }),
      400,
      'parameter_missing',
      'payment_method[card]',
    );
    // Semantically required, checked by the handler.
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', confirm: true }),
      400,
      'parameter_missing',
      'payment_method',
    );
  });

  it('wrong types are named with nested bracket paths', async () => {
    const nested = card(TEST_CARDS.visa, { exp_month: 'twelve' });
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: nested,
      }),
      400,
      'parameter_invalid',
      'payment_method[card][exp_month]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa, { exp_month: 13 })),
      400,
      'parameter_invalid',
      'card[exp_month]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: '100', currency: 'usd' }),
      400,
      'parameter_invalid',
      'amount',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 1.5, currency: 'usd' }),
      400,
      'parameter_invalid',
      'amount',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', metadata: { k: 1 } }),
      400,
      'parameter_invalid',
      'metadata[k]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', confirm: 'yes' }),
      400,
      'parameter_invalid',
      'confirm',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'GET', '/v1/payments?limit=500'),
      400,
      'parameter_invalid',
      'limit',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'GET', '/v1/payments?limit=abc'),
      400,
      'parameter_invalid',
      'limit',
    );
  });

  it('an unsupported currency and an amount over the currency maximum are parameter errors', async () => {
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'zzz' }),
      400,
      'invalid_currency',
      'currency',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 1_000_000_000_001, currency: 'usd' }),
      400,
      'parameter_invalid',
      'amount',
    );
  });

  it('card errors are 402 card_error naming the field', async () => {
    const error = expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card('4242424242424241')),
      402,
      'incorrect_number',
      'card[number]',
    );
    expect(error.type).toBe('card_error');
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa, { exp_year: 2001 })),
      402,
      'invalid_expiry_year',
      'card[exp_year]',
    );
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa, { cvc: '1234' }),
      }),
      402,
      'invalid_cvc',
      'payment_method[card][cvc]',
    );
    const declined = expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: card(TEST_CARDS.insufficientFunds),
        confirm: true,
      }),
      402,
      'card_declined',
    );
    expect(declined.decline_code).toBe('insufficient_funds');
    expect(declined.payment.status).toBe('requires_payment_method');
  });

  it('state conflicts are 400 payment_intent_unexpected_state', async () => {
    const payment = (
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd' })
    ).json();
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', `/v1/payments/${payment.id}/capture`, {}),
      400,
      'payment_intent_unexpected_state',
    );
  });
});

describe('text PostgreSQL cannot store', () => {
  it.each([
    ['a NUL character', 'abc\u0000def'],
    ['an unpaired high surrogate', 'abc\ud800def'],
    ['an unpaired low surrogate', '\udc00'],
  ])('%s in any text field is a 400 naming the field, not a 500', async (_name, value) => {
    const cases: Array<[string, string, unknown, string | null]> = [
      [tenant.testKey, '/v1/payments', { amount: 100, currency: 'usd', description: value }, 'description'],
      [tenant.testKey, '/v1/payments', { amount: 100, currency: 'usd', customer: value }, 'customer'],
      [tenant.testKey, '/v1/payments', { amount: 100, currency: 'usd', metadata: { note: value } }, 'metadata'],
      [tenant.testKey, '/v1/payments', { amount: 100, currency: 'usd', metadata: { [value]: 'x' } }, 'metadata'],
      [tenant.testKey, '/v1/payment_methods', { ...card(TEST_CARDS.visa), customer: value }, 'customer'],
      [tenant.testKey, '/v1/api_keys', { scopes: ['payments:read'], name: value }, 'name'],
      [PLATFORM_KEY, '/v1/tenants', { name: value }, 'name'],
    ];
    for (const [key, url, body, param] of cases) {
      const error = expectEnvelope(await call(t.app, key, 'POST', url, body), 400, 'parameter_invalid', param);
      expect(error.message).not.toContain(value);
    }
  });

  it('a NUL in a query parameter or path is refused, not a 500', async () => {
    expectEnvelope(
      await call(t.app, tenant.testKey, 'GET', '/v1/payments?customer=a%00b'),
      400,
      'parameter_invalid',
      'customer',
    );
    expectEnvelope(await call(t.app, tenant.testKey, 'GET', '/v1/events?type=a%00b'), 400, 'parameter_invalid', 'type');
    expectEnvelope(await call(t.app, tenant.testKey, 'GET', '/v1/payments/pay_%00'), 404, 'resource_missing');
    expectEnvelope(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments/pay_%00/cancel', {}),
      404,
      'resource_missing',
    );
  });

  it('emoji and other well-formed text are stored and returned intact', async () => {
    const description = 'Zahlung für 🎉 — 日本語 \u2028 "quoted" \\ back';
    const payment = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 100,
      currency: 'usd',
      description,
      metadata: { '🔑': '✓' },
    });
    expect(payment.statusCode).toBe(200);
    const fetched = (await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.json().id}`)).json();
    expect(fetched.description).toBe(description);
    expect(fetched.metadata).toEqual({ '🔑': '✓' });
  });
});

describe('malformed URLs', () => {
  it.each(['/v1/payments/x%', '/v1/payments/%ED%A0%80', '/v1/payments/%C0%80', '/v1/payment_methods/%zz'])(
    '%s -> 400 invalid_url in the envelope, with a request-id',
    async (url) => {
      const error = expectEnvelope(await call(t.app, tenant.testKey, 'GET', url), 400, 'invalid_url', null);
      expect(error.type).toBe('invalid_request_error');
      expect(error.message).not.toContain('%');
    },
  );
});

describe('request ids', () => {
  it('every response carries a unique request-id, and errors repeat it in error.request_id', async () => {
    const responses: Response[] = [
      await t.app.inject({ method: 'GET', url: '/health' }),
      await t.app.inject({ method: 'GET', url: '/openapi.json' }),
      await t.app.inject({ method: 'GET', url: '/nowhere' }),
      await t.app.inject({ method: 'GET', url: '/v1/payments' }),
      await call(t.app, tenant.testKey, 'GET', '/v1/payments'),
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd' }),
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: -1, currency: 'usd' }),
      await call(t.app, tenant.testKey, 'GET', '/v1/payments/pay_missing'),
      await call(t.app, PLATFORM_KEY, 'GET', '/v1/payments'),
      await raw('{bad json'),
      await raw('{}', { 'content-type': 'text/plain' }),
      await raw(JSON.stringify({ description: 'z'.repeat(70_000) })),
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 100,
        currency: 'usd',
        payment_method: card(TEST_CARDS.declined),
        confirm: true,
      }),
    ];
    const ids = new Set<string>();
    for (const response of responses) {
      const id = response.headers['request-id'];
      expect(id, response.body).toMatch(/^req_[0-9a-z]+$/);
      ids.add(id as string);
      if (response.statusCode >= 400) {
        expect(response.json().error.request_id, response.body).toBe(id);
      }
    }
    expect(ids.size).toBe(responses.length);
    expect(responses.filter((r) => r.statusCode >= 400).length).toBeGreaterThanOrEqual(8);
  });

  it('a client-supplied request-id header is not trusted', async () => {
    // Well-formed and current, as a trusted proxy's would be: without REQUEST_ID_HEADER it is ignored all the same.
    const wellFormed = newId('req');
    const response = await call(t.app, tenant.testKey, 'GET', '/v1/payments/pay_missing', undefined, {
      'request-id': wellFormed,
      'x-request-id': wellFormed,
    });
    expect(response.headers['request-id']).toMatch(/^req_/);
    expect(response.headers['request-id']).not.toBe(wellFormed);
    expect(response.json().error.request_id).toBe(response.headers['request-id']);
  });
});

describe('request ids from a trusted proxy (REQUEST_ID_HEADER)', () => {
  let proxied: TestApp;
  let proxiedTenant: TestTenant;
  beforeAll(async () => {
    // debug: each request's access lines are logged, labelled with its id.
    proxied = await bootApp({ REQUEST_ID_HEADER: 'X-Request-Id', LOG_LEVEL: 'debug' });
    proxiedTenant = await createTenant(proxied.app, 'Proxied tenant');
  });
  afterAll(() => proxied?.close());

  it("keeps the proxy's id: in the response header, the error body, the logs and the request log", async () => {
    const id = newId('req');
    const response = await call(proxied.app, proxiedTenant.testKey, 'GET', '/v1/payments/pay_missing', undefined, {
      'x-request-id': id,
    });
    expect(response.statusCode).toBe(404);
    expect(response.headers['request-id']).toBe(id);
    expect(response.json().error.request_id).toBe(id);
    const lines = proxied.logs.map((line) => JSON.parse(line)).filter((line) => line.request_id === id);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    await proxied.platform.requestLogRecorder.flush();
    const logged = await call(proxied.app, proxiedTenant.testKey, 'GET', `/v1/request_logs/${id}`);
    expect(logged.statusCode, logged.body).toBe(200);
    expect(logged.json()).toMatchObject({ id, status: 404, path: '/v1/payments/pay_missing' });
  });

  it('gives any other value a fresh id and answers the request as if none had been sent', async () => {
    const current = newId('req');
    const hostile: (string | string[])[] = [
      '',
      'req_spoofed',
      'x'.repeat(10_000),
      current.toUpperCase(),
      `${current}0`,
      current.slice(0, -1),
      current.replace('req_', 'pay_'),
      `${current.slice(0, -1)}u`, // u is not in the alphabet
      `${idFloor('req', new Date(Date.now() + 86_400_000))}00000000000000`, // a day ahead
      `${idFloor('req', new Date(Date.now() - 86_400_000))}00000000000000`, // a day old
      `${idFloor('req', new Date(0))}00000000000000`,
      'req_zzzzzzzzzzzzzzzzzzzzzzzz', // beyond any time
      `${current}; drop table request_logs`,
      `${current.slice(0, -1)}é`,
      [current, newId('req')], // the header twice
    ];
    const baseline = await call(proxied.app, proxiedTenant.testKey, 'GET', '/v1/payments?limit=1');
    expect(baseline.statusCode).toBe(200);
    const seen = new Set<string>();
    for (const value of hostile) {
      const response = await call(proxied.app, proxiedTenant.testKey, 'GET', '/v1/payments?limit=1', undefined, {
        'x-request-id': value as string,
      });
      const label = JSON.stringify(value).slice(0, 80);
      expect(response.statusCode, label).toBe(200);
      const id = response.headers['request-id'] as string;
      expect(id, label).toMatch(/^req_[0-9a-z]{24}$/);
      expect([value].flat(), label).not.toContain(id);
      seen.add(id);
    }
    expect(seen.size).toBe(hostile.length);
  });

  it('rejects at start-up a REQUEST_ID_HEADER that is not a header name', () => {
    expect(() => loadConfig({ REQUEST_ID_HEADER: 'X-Request-Id: req_1' })).toThrow(/REQUEST_ID_HEADER/);
    expect(loadConfig({ REQUEST_ID_HEADER: 'X-Request-Id' }).requestIdHeader).toBe('x-request-id');
    expect(loadConfig({}).requestIdHeader).toBeUndefined();
  });
});
