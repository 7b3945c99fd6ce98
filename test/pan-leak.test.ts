import { createHash, randomInt } from 'node:crypto';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfirmPaymentBody, CreatePaymentBody } from '../src/modules/payments/schemas.js';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

// Card numbers (PANs) and CVCs must never come back out: not in a response, an error message, an
// event, a log line or any database column. Every way in that we can think of is exercised first,
// then every place they could end up is searched.

function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let digit = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return String((10 - (sum % 10)) % 10);
}

/** A valid Visa number no other test uses, so finding it anywhere can only be a leak from here. */
function distinctivePan(): string {
  let body = '4';
  while (body.length < 15) body += String(randomInt(10));
  return body + luhnCheckDigit(body);
}

const CVC = '737';
const spaced = (pan: string) => pan.replace(/(\d{4})(?=\d)/g, '$1 ');

const RANDOM_A = distinctivePan();
const RANDOM_B = distinctivePan();
const RANDOM_C = distinctivePan();
/** Cards that are stored and charged. */
const GOOD = ['4111111111111111', '4012888888881881', RANDOM_A, RANDOM_B];
/** Cards that fail in one way or another. */
const FAILING = [TEST_CARDS.declined, TEST_CARDS.insufficientFunds, TEST_CARDS.threeDSecure, TEST_CARDS.incorrectCvc];
/** Only ever sent where no card belongs. */
const STRAY = RANDOM_C;
const ALL = [...GOOD, ...FAILING, STRAY];

let t: TestApp;
let tenant: TestTenant;
const bodies: string[] = [];
/** Every request body sent with a card in it or not: as sent (text) or as the object serialized. */
const requests: { method: string; url: string; body: unknown; raw?: string }[] = [];

type Response = Awaited<ReturnType<typeof call>>;
function keep(response: Response): Response {
  bodies.push(response.body);
  for (const [name, value] of Object.entries(response.headers)) bodies.push(`${name}: ${String(value)}`);
  return response;
}
const send = async (...args: Parameters<typeof call>) => {
  const [, , method, url, body] = args;
  if (body !== undefined) requests.push({ method: String(method), url, body });
  return keep(await call(...args));
};
const rawSend = async (
  url: string,
  payload: string,
  method: 'POST' | 'GET' = 'POST',
  headers: Record<string, string> = {},
) => {
  requests.push({ method, url, body: undefined, raw: payload });
  return keep(
    await t.app.inject({
      method,
      url,
      payload,
      headers: { authorization: `Bearer ${tenant.testKey}`, 'content-type': 'application/json', ...headers },
    }),
  );
};

const cardWithCvc = (pan: string, extra: Record<string, unknown> = {}) => card(pan, { cvc: CVC, ...extra });

beforeAll(async () => {
  // Debug level turns on per-request access logs, so URLs are logged and must be masked.
  t = await bootApp({ LOG_LEVEL: 'debug' });
  tenant = await createTenant(t.app, 'PAN tenant');
  const key = tenant.testKey;
  let n = 0;
  const idem = () => ({ 'idempotency-key': `pan-${n++}-${Date.now()}` });

  for (const pan of GOOD) {
    // Tokenized (plain and with spaces), verified with a CVC, charged saved and inline.
    const pm = (await send(t.app, key, 'POST', '/v1/payment_methods', cardWithCvc(pan), idem())).json();
    expect(pm.id).toMatch(/^pm_/);
    expect((await send(t.app, key, 'POST', '/v1/payment_methods', cardWithCvc(spaced(pan)))).statusCode).toBe(200);
    expect(
      (await send(t.app, key, 'POST', `/v1/payment_methods/${pm.id}/verify`, { cvc: CVC }, idem())).statusCode,
    ).toBe(200);
    expect(
      (
        await send(
          t.app,
          key,
          'POST',
          '/v1/payments',
          { amount: 1000, currency: 'usd', payment_method: pm.id, confirm: true },
          idem(),
        )
      ).statusCode,
    ).toBe(200);
    const inline = await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      {
        amount: 2000,
        currency: 'usd',
        payment_method: cardWithCvc(spaced(pan)),
        confirm: true,
        capture_method: 'manual',
      },
      idem(),
    );
    expect(inline.statusCode).toBe(200);
    expect(
      (await send(t.app, key, 'POST', `/v1/payments/${inline.json().id}/capture`, { amount_to_capture: 1500 }, idem()))
        .statusCode,
    ).toBe(200);
    expect(
      (await send(t.app, key, 'POST', '/v1/refunds', { payment: inline.json().id, amount: 100 }, idem())).statusCode,
    ).toBe(200);
    const later = (await send(t.app, key, 'POST', '/v1/payments', { amount: 500, currency: 'eur' })).json();
    expect(
      (await send(t.app, key, 'POST', `/v1/payments/${later.id}/confirm`, { payment_method: cardWithCvc(pan) }, idem()))
        .statusCode,
    ).toBe(200);
  }

  for (const pan of FAILING) {
    const response = await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 700, currency: 'usd', payment_method: cardWithCvc(pan), confirm: true },
      idem(),
    );
    expect([200, 402]).toContain(response.statusCode);
    const pm = (await send(t.app, key, 'POST', '/v1/payment_methods', cardWithCvc(pan))).json();
    expect((await send(t.app, key, 'POST', `/v1/payment_methods/${pm.id}/verify`, { cvc: CVC })).statusCode).toBe(200);
  }

  // Rejected cards: bad expiry (card error and schema error), bad Luhn, bad CVC.
  const [pan] = GOOD;
  const rejected = [
    await send(t.app, key, 'POST', '/v1/payment_methods', cardWithCvc(pan, { exp_year: 2001 }), idem()),
    await send(t.app, key, 'POST', '/v1/payment_methods', cardWithCvc(pan, { exp_month: 13 }), idem()),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payment_methods',
      cardWithCvc(pan.slice(0, -1) + String((Number(pan.at(-1)) + 1) % 10)),
      idem(),
    ),
    await send(t.app, key, 'POST', '/v1/payment_methods', card(pan, { cvc: '73' }), idem()),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 100, currency: 'usd', payment_method: cardWithCvc(pan, { exp_year: 2002 }), confirm: true },
      idem(),
    ),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 0, currency: 'usd', payment_method: cardWithCvc(pan), confirm: true },
      idem(),
    ),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 100, currency: 'usd', payment_method: cardWithCvc(pan), confirm: 'yes' },
      idem(),
    ),
  ];
  for (const response of rejected) expect(response.statusCode, response.body).toBeGreaterThanOrEqual(400);

  // A card number where no card belongs: as a parameter name, an unknown parameter's value, the
  // wrong field, an id, a path segment and a query string.
  const stray = [
    await send(t.app, key, 'POST', '/v1/payments', { amount: 100, currency: 'usd', [STRAY]: 'x' }, idem()),
    await send(t.app, key, 'POST', '/v1/payments', { amount: 100, currency: 'usd', card_number: STRAY }, idem()),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payment_methods',
      { type: 'card', card: { number: STRAY, exp_month: 1, exp_year: 2040, [STRAY]: CVC } },
      idem(),
    ),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payment_methods',
      { type: 'card', card: { number: `${STRAY}x`, exp_month: 1, exp_year: 2040, cvc: CVC } },
      idem(),
    ),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payment_methods',
      { type: 'card', card: { number: STRAY, exp_month: 1, exp_year: 2040, cvc: STRAY } },
      idem(),
    ),
    await send(t.app, key, 'POST', '/v1/payments', { amount: 100, currency: 'usd', payment_method: STRAY }, idem()),
    await send(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 100, currency: 'usd', payment_method: `pm_${STRAY}` },
      idem(),
    ),
    await send(t.app, key, 'POST', '/v1/refunds', { payment: STRAY }, idem()),
    await send(t.app, key, 'POST', '/v1/refunds', { payment: `pay_${STRAY}` }, idem()),
    await send(t.app, key, 'GET', `/v1/payments/${STRAY}`),
    await send(t.app, key, 'GET', `/v1/payments/pay_${STRAY}`),
    await send(t.app, key, 'GET', `/v1/payment_methods/${spaced(STRAY).replace(/ /g, '%20')}`),
    await send(t.app, key, 'POST', `/v1/payments/${STRAY}/confirm`, {}, idem()),
    await send(t.app, key, 'POST', `/v1/payments/${STRAY}`, { amount: 100 }, idem()),
    await send(t.app, key, 'POST', `/v1/${STRAY}`, {}, idem()),
    await send(t.app, key, 'GET', `/v1/payments/${STRAY}%`),
    await send(t.app, key, 'GET', `/v1/payments/${STRAY}%C0%80`),
    await send(t.app, key, 'GET', `/v1/payments?starting_after=${STRAY}&customer=${STRAY}`),
    await send(t.app, key, 'GET', `/v1/payments?${STRAY}=1`),
    await send(
      t.app,
      key,
      'GET',
      `/v1/payments?customer=${spaced(STRAY).replace(/ /g, '+')}&${spaced(STRAY).replace(/ /g, '+')}=1`,
    ),
    await send(t.app, key, 'GET', `/v1/payments?limit=${STRAY}`),
    await send(t.app, key, 'GET', `/v1/events?object_id=${STRAY}&type=${STRAY}`),
    await send(t.app, `sk_test_${STRAY}abc`, 'GET', '/v1/payments'),
    await send(t.app, STRAY, 'GET', '/v1/payments'),
    await rawSend(
      '/v1/payments',
      `{"amount": 100, "currency": "usd", "payment_method": {"type": "card", "card": {"number": "${STRAY}", "cvc": "${CVC}"`,
      'POST',
      idem(),
    ),
    await rawSend(
      '/v1/payment_methods',
      `{"type": "card", "card": {"number": ${STRAY}, "exp_month": 1, "exp_year": 2040}}`,
      'POST',
      idem(),
    ),
    await rawSend(
      '/v1/payment_methods',
      `{"type": "card", "card": {"number": "${STRAY}", "exp_month": 1, "exp_year": 2040}}`,
      'POST',
      { 'content-type': 'text/plain' },
    ),
  ];
  for (const response of stray) expect(response.statusCode, response.body).toBeLessThan(500);
  expect(stray.filter((r) => r.statusCode >= 400).length).toBeGreaterThanOrEqual(stray.length - 3);
  // Let any buffered write reach the database before it is searched.
  await t.platform.writer.idle();
});
afterAll(() => t.close());

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/** The forms a number can take on the way in: plain, spaced, and spaced then URL-encoded. */
const forms = (pan: string) => [pan, spaced(pan), spaced(pan).replace(/ /g, '%20'), spaced(pan).replace(/ /g, '+')];

// The digits in order with up to one separator (a space, "?", "%20", …) between any two of them.
const patterns = new Map(ALL.map((pan) => [pan, new RegExp(pan.split('').join('(?:%20|%2[dD]|[^0-9A-Za-z]{1,2})?'))]));

function findPans(text: string): string[] {
  return ALL.filter((pan) => patterns.get(pan)!.test(text));
}

describe('card numbers never come back out', () => {
  it('the setup really exercised the cards (the searches below are not vacuous)', async () => {
    const [{ count }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payment_methods WHERE tenant_id = ${tenant.id}`;
    expect(count).toBeGreaterThanOrEqual(GOOD.length * 3 + FAILING.length * 2);
    const last4 = await t.admin<
      { last4: string }[]
    >`SELECT DISTINCT last4 FROM payment_methods WHERE tenant_id = ${tenant.id}`;
    for (const pan of [...GOOD, ...FAILING]) expect(last4.map((r) => r.last4)).toContain(pan.slice(-4));
    expect(bodies.length).toBeGreaterThan(80);
  });

  it('in no API response body or header', () => {
    for (const body of bodies) expect(findPans(body), body).toEqual([]);
  });

  it('in no error message or param', () => {
    const errors = bodies.filter((b) => b.startsWith('{"error"')).map((b) => JSON.parse(b).error);
    expect(errors.length).toBeGreaterThan(25);
    for (const error of errors) {
      expect(findPans(`${error.message} ${error.param}`), JSON.stringify(error)).toEqual([]);
      expect(error.message).not.toMatch(/\d{12,}/);
      if (error.param) expect(error.param).not.toMatch(/\d{12,}/);
    }
  });

  it('in no log line, even with request logging on', () => {
    expect(t.logs.length).toBeGreaterThan(100);
    for (const line of t.logs) expect(findPans(line), line).toEqual([]);
    // The path carrying a card number was logged, masked.
    expect(t.logs.some((line) => line.includes('/v1/payments/[redacted]'))).toBe(true);
  });

  it('in no event', async () => {
    const events: unknown[] = [];
    let startingAfter: string | undefined;
    for (;;) {
      const page = (
        await call(
          t.app,
          tenant.testKey,
          'GET',
          `/v1/events?limit=100${startingAfter ? `&starting_after=${startingAfter}` : ''}`,
        )
      ).json();
      events.push(...page.data);
      if (!page.has_more) break;
      startingAfter = page.data.at(-1).id;
    }
    expect(events.length).toBeGreaterThan(GOOD.length * 5);
    for (const event of events) expect(findPans(JSON.stringify(event))).toEqual([]);
    const retrieved = await call(t.app, tenant.testKey, 'GET', `/v1/events/${(events[0] as { id: string }).id}`);
    expect(findPans(retrieved.body)).toEqual([]);
  });

  it('in no database column of any table', async () => {
    const columns = await t.admin<{ table_name: string; column_name: string; data_type: string }[]>`
      SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema = 'public'
        AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'ARRAY', 'USER-DEFINED')`;
    const tables = new Set(columns.map((c) => c.table_name));
    for (const table of [
      'payments',
      'payment_methods',
      'payment_attempts',
      'refunds',
      'events',
      'idempotency_keys',
      'api_keys',
      'tenants',
    ]) {
      expect(tables.has(table), table).toBe(true);
    }
    const withTenant = new Set(columns.filter((c) => c.column_name === 'tenant_id').map((c) => c.table_name));
    const needles = ALL.flatMap(forms);
    const hexNeedles = ALL.map((pan) => Buffer.from(pan).toString('hex'));
    let searched = 0;
    for (const { table_name: table, column_name: column, data_type: type } of columns) {
      // Other suites share the database; their rows are searched too, except that tables with a
      // tenant are limited to ours, where the well-known test numbers may legitimately be typed.
      const own = withTenant.has(table)
        ? t.admin`AND tenant_id = ${tenant.id}`
        : table === 'tenants'
          ? t.admin`AND id = ${tenant.id}`
          : t.admin``;
      const text = type === 'bytea' ? t.admin`encode(${t.admin(column)}, 'escape')` : t.admin`${t.admin(column)}::text`;
      const hex =
        type === 'bytea'
          ? t.admin`encode(${t.admin(column)}, 'hex')`
          : t.admin`encode(convert_to(${t.admin(column)}::text, 'UTF8'), 'hex')`;
      const hits = await t.admin<{ value: string }[]>`
        SELECT left(${text}, 200) AS value FROM ${t.admin(table)}
        WHERE (${text} LIKE ANY(${needles.map((n) => `%${n}%`)}) OR ${hex} LIKE ANY(${hexNeedles.map((n) => `%${n}%`)})) ${own}
        LIMIT 3`;
      expect(hits, `${table}.${column}`).toEqual([]);
      searched++;
    }
    expect(searched).toBeGreaterThan(30);
  });

  it('in no column as an unkeyed digest of a request body (SHA-1/256/512, MD5; hex, base64)', async () => {
    // What a request fingerprint without a secret key would store: a digest of the body as sent, of
    // its canonical JSON, with or without the schema's defaults filled in, bare or after
    // "<method> <url>\n" (the former fingerprint input). Each is computable from a guessed PAN.
    const withDefaults: Record<string, (body: unknown) => boolean> = {
      '/v1/payments': new Ajv({ useDefaults: true, strict: false }).compile(CreatePaymentBody),
      confirm: new Ajv({ useDefaults: true, strict: false }).compile(ConfirmPaymentBody),
    };
    const inputs = new Set<string>();
    for (const request of requests) {
      const parsed = request.raw === undefined ? request.body : parseOrUndefined(request.raw);
      const forms = [request.raw ?? JSON.stringify(request.body)];
      if (parsed !== undefined) {
        const filled = structuredClone(parsed);
        withDefaults[request.url.endsWith('/confirm') ? 'confirm' : request.url]?.(filled);
        forms.push(JSON.stringify(parsed), canonicalJson(parsed), JSON.stringify(filled), canonicalJson(filled));
      }
      for (const form of forms) {
        inputs.add(form);
        inputs.add(`${request.method} ${request.url}\n${form}`);
      }
    }
    const digests = new Set<string>();
    for (const input of inputs)
      for (const algorithm of ['sha1', 'sha256', 'sha512', 'md5']) {
        const digest = createHash(algorithm).update(input).digest();
        digests.add(digest.toString('hex'));
        digests.add(digest.toString('base64'));
        digests.add(digest.toString('base64url'));
      }
    expect(inputs.size).toBeGreaterThan(requests.length * 4);
    // A card-bearing body's defaults were really filled in (the old fingerprint digested that form).
    expect([...inputs].some((i) => i.includes('"capture_method":"automatic"') && i.includes(GOOD[0]))).toBe(true);

    const columns = await t.admin<{ table_name: string; column_name: string; data_type: string }[]>`
      SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'ARRAY')`;
    const withTenant = new Set(columns.filter((c) => c.column_name === 'tenant_id').map((c) => c.table_name));
    const found: string[] = [];
    let values = 0;
    for (const { table_name: table, column_name: column, data_type: type } of columns) {
      const own = withTenant.has(table)
        ? t.admin`AND tenant_id = ${tenant.id}`
        : table === 'tenants'
          ? t.admin`AND id = ${tenant.id}`
          : t.admin``;
      const value = type === 'bytea' ? t.admin`encode(${t.admin(column)}, 'hex')` : t.admin`${t.admin(column)}::text`;
      const rows = await t.admin<{ value: string }[]>`
        SELECT ${value} AS value FROM ${t.admin(table)} WHERE ${t.admin(column)} IS NOT NULL ${own}`;
      for (const { value: text } of rows) {
        values++;
        // Digests are stored whole (a column, a JSON string, a prefixed token) or, in bytea, as raw
        // bytes anywhere in the value: every window of a digest's length is looked up.
        const tokens: string[] = [...(text.match(/[A-Za-z0-9+/_-]+=*/g) ?? [])];
        if (type === 'bytea')
          for (const length of [32, 40, 64, 128])
            for (let i = 0; i + length <= text.length; i += 2) tokens.push(text.slice(i, i + length));
        const hit = tokens.find((token) => digests.has(token) || digests.has(token.toLowerCase()));
        if (hit) found.push(`${table}.${column}: ${hit}`);
      }
    }
    expect(values).toBeGreaterThan(500);
    expect(found).toEqual([]);
  });

  it('the vault holds ciphertext that does not contain the number', async () => {
    const rows = await t.admin<{ pan_ciphertext: Buffer; wrapped_dek: Buffer; last4: string }[]>`
      SELECT pan_ciphertext, wrapped_dek, last4 FROM payment_methods WHERE tenant_id = ${tenant.id}`;
    for (const row of rows) {
      const bytes = Buffer.concat([row.pan_ciphertext, row.wrapped_dek]);
      for (const pan of ALL) {
        expect(bytes.includes(Buffer.from(pan))).toBe(false);
        expect(bytes.includes(Buffer.from(pan, 'hex'))).toBe(false);
      }
    }
  });
});

describe('CVCs are never stored or echoed', () => {
  it('no column holds the CVC as a value, and no JSON anywhere has a cvc field', async () => {
    // A three-digit string turns up by chance inside hex, ids and timestamps, so the CVC is looked
    // for as a whole value: a text column equal to it, a JSON string or number equal to it, a cvc key.
    const columns = await t.admin<{ table_name: string; column_name: string; data_type: string }[]>`
      SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')`;
    const withTenant = new Set(columns.filter((c) => c.column_name === 'tenant_id').map((c) => c.table_name));
    let jsonColumns = 0;
    for (const { table_name: table, column_name: column, data_type: type } of columns) {
      const col = t.admin(column);
      const condition =
        type === 'jsonb' || type === 'json'
          ? t.admin`(jsonb_path_exists(${col}::jsonb, '$.** ? (@ == "737" || @ == 737)') OR ${col}::text ~ '"cvc"\\s*:')`
          : type === 'ARRAY'
            ? t.admin`${CVC} = ANY(${col}::text[])`
            : t.admin`(${col} = ${CVC} OR ${col} ~ '(^|[^0-9A-Za-z_-])737([^0-9A-Za-z_-]|$)')`;
      if (type === 'jsonb' || type === 'json') jsonColumns++;
      const own = withTenant.has(table)
        ? t.admin`AND tenant_id = ${tenant.id}`
        : table === 'tenants'
          ? t.admin`AND id = ${tenant.id}`
          : t.admin``;
      const hits = await t.admin`SELECT 1 FROM ${t.admin(table)} WHERE ${condition} ${own} LIMIT 1`;
      expect(hits, `${table}.${column}`).toEqual([]);
    }
    expect(jsonColumns).toBeGreaterThanOrEqual(5);
  });

  it('no response or log line carries the CVC', () => {
    for (const text of [...bodies, ...t.logs]) {
      expect(text).not.toMatch(/"cvc"\s*:\s*"\d/);
      expect(text).not.toContain(`"${CVC}"`);
    }
  });
});
