import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  bootApp,
  call,
  createTenant,
  expectError,
  newCustomer,
  ok,
  TEST_CARDS,
  TestClock,
  card,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { freePort, waitFor } from './process.js';
import { BROWSER_STEP_MS, BROWSER_TEST_MS, chromiumAvailable, launchChromium } from './services.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
let baseUrl: string;
let browser: Browser;
const clock = new TestClock();
const hasBrowser = chromiumAvailable();

beforeAll(async () => {
  // Session URLs carry PUBLIC_URL, so the port is chosen before the app boots.
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  t = await bootApp({ PUBLIC_URL: baseUrl }, undefined, { clock });
  await t.app.listen({ port, host: '127.0.0.1' });
  tenant = await createTenant(t.app, 'Checkout');
  other = await createTenant(t.app, 'Checkout (other tenant)');
  if (!hasBrowser) return;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const session = (changes: Record<string, unknown> = {}) =>
  post('/v1/checkout/sessions', {
    amount: 4900,
    currency: 'eur',
    success_url: `${baseUrl}/health?paid=1`,
    cancel_url: 'https://shop.example.com/cart',
    metadata: { order_id: '1042' },
    ...changes,
  });
const pagePath = (url: string) => new URL(url).pathname;
const eventsOf = async (id: string) =>
  (await ok(await get(`/v1/events?object_id=${id}&limit=10`))).data.map((e: { type: string }) => e.type);

describe('checkout sessions API', () => {
  it('creates an open session with its payment and a URL, and retrieves and lists it', async () => {
    const customer = await newCustomer(t.app, tenant.testKey);
    const created = await ok(await session({ customer }));
    expect(created).toMatchObject({
      object: 'checkout.session',
      status: 'open',
      payment_status: 'unpaid',
      amount: 4900,
      currency: 'eur',
      customer,
      metadata: { order_id: '1042' },
      completed_at: null,
      livemode: false,
    });
    expect(created.id).toMatch(/^cs_/);
    expect(created.url.startsWith(`${baseUrl}/checkout/`)).toBe(true);
    expect(created.expires_at - created.created).toBe(24 * 3600);
    const payment = await ok(await get(`/v1/payments/${created.payment}`));
    expect(payment).toMatchObject({ status: 'requires_payment_method', amount: 4900, customer });
    expect(payment.metadata).toEqual({ checkout_session: created.id });
    expect(await ok(await get(`/v1/checkout/sessions/${created.id}`))).toEqual(created);
    const open = await ok(await get('/v1/checkout/sessions?status=open&limit=100'));
    expect(open.data.map((s: { id: string }) => s.id)).toContain(created.id);
    const expired = await ok(await get('/v1/checkout/sessions?status=expired&limit=100'));
    expect(expired.data.map((s: { id: string }) => s.id)).not.toContain(created.id);
  });

  it('refuses bad input with the 400 envelope', async () => {
    for (const changes of [
      { success_url: undefined },
      { success_url: 'javascript:alert(1)' },
      { cancel_url: 'ftp://shop.example.com' },
      { amount: 0 },
      { amount: '100' },
      { currency: 'euro' },
      { expires_in: 60 },
      { expires_in: 2 * 86400 },
      { color: 'red' },
    ])
      expectError(await session(changes), 400, { type: 'invalid_request_error' });
    expectError(await session({ customer: 'cus_doesnotexist' }), 400, { type: 'invalid_request_error' });
  });

  it("another tenant's key gets 404, and a publishable key 403", async () => {
    const created = await ok(await session());
    expectError(await get(`/v1/checkout/sessions/${created.id}`, other.testKey), 404, { code: 'resource_missing' });
    expectError(await post(`/v1/checkout/sessions/${created.id}/expire`, undefined, other.testKey), 404, {
      code: 'resource_missing',
    });
    const list = await ok(await get('/v1/checkout/sessions?limit=100', other.testKey));
    expect(list.data.map((s: { id: string }) => s.id)).not.toContain(created.id);
    const pk = (await ok(await get('/v1/publishable_key'))).key;
    expectError(await call(t.app, pk, 'GET', `/v1/checkout/sessions/${created.id}`), 403, {
      code: 'publishable_key_not_allowed',
    });
    expectError(
      await call(t.app, pk, 'POST', '/v1/checkout/sessions', {
        amount: 100,
        currency: 'eur',
        success_url: 'https://a.example',
        cancel_url: 'https://a.example',
      }),
      403,
      { code: 'publishable_key_not_allowed' },
    );
  });

  it('expire: the payment is canceled, the page stops, checkout.session.expired is emitted once', async () => {
    const created = await ok(await session());
    const expired = await ok(await post(`/v1/checkout/sessions/${created.id}/expire`));
    expect(expired).toMatchObject({ status: 'expired', url: null, payment_status: 'unpaid' });
    expect((await ok(await get(`/v1/payments/${created.payment}`))).status).toBe('canceled');
    expectError(await post(`/v1/checkout/sessions/${created.id}/expire`), 400, { code: 'checkout_session_not_open' });
    expect((await t.app.inject({ url: pagePath(created.url) })).statusCode).toBe(404);
    expect(await eventsOf(created.id)).toEqual(['checkout.session.expired']);
  });

  it('expires by itself after expires_at (24 hours by default)', async () => {
    const created = await ok(await session());
    const short = await ok(await session({ expires_in: 1800 }));
    clock.advance(1801 * 1000);
    expect((await ok(await get(`/v1/checkout/sessions/${short.id}`))).status).toBe('expired');
    expect((await ok(await get(`/v1/checkout/sessions/${created.id}`))).status).toBe('open');
    clock.advance(24 * 3600 * 1000);
    const page = await t.app.inject({ url: pagePath(created.url) });
    expect(page.statusCode).toBe(404);
    expect((await ok(await get(`/v1/checkout/sessions/${created.id}`))).status).toBe('expired');
    expect((await ok(await get(`/v1/payments/${created.payment}`))).status).toBe('canceled');
    expect(await eventsOf(created.id)).toEqual(['checkout.session.expired']);
  });

  it('completes once its payment succeeded, with checkout.session.completed once', async () => {
    const created = await ok(await session());
    const complete = pagePath(created.url) + '/complete';
    expectError(await t.app.inject({ method: 'POST', url: complete }), 400, { code: 'checkout_session_unpaid' });
    await ok(await post(`/v1/payments/${created.payment}/confirm`, { payment_method: card(TEST_CARDS.visa) }));
    const [a, b] = await Promise.all([
      t.app.inject({ method: 'POST', url: complete }),
      get(`/v1/checkout/sessions/${created.id}`),
    ]);
    expect(a.json()).toEqual({ redirect_url: `${baseUrl}/health?paid=1` });
    expect(b.json().status).toBe('complete');
    const completed = await ok(await get(`/v1/checkout/sessions/${created.id}`));
    expect(completed).toMatchObject({ status: 'complete', payment_status: 'paid', url: null });
    expect(completed.completed_at).toEqual(expect.any(Number));
    expect(await eventsOf(created.id)).toEqual(['checkout.session.completed']);
    expectError(await post(`/v1/checkout/sessions/${created.id}/expire`), 400, { code: 'checkout_session_not_open' });
  });

  const statuses = async (...ids: string[]) =>
    Object.fromEntries(
      (
        await t.admin<
          { id: string; status: string }[]
        >`SELECT id, status FROM checkout_sessions WHERE id IN ${t.admin(ids)}`
      ).map((r) => [r.id, r.status]),
    );

  it('completes as its payment succeeds, with its event, though neither the page nor the worker reports back', async () => {
    const created = await ok(await session());
    // The buyer paid and closed the tab at once; nothing reads the session.
    await ok(await post(`/v1/payments/${created.payment}/confirm`, { payment_method: card(TEST_CARDS.visa) }));
    await waitFor(
      async () => (await statuses(created.id))[created.id] === 'complete',
      10_000,
      'the session completed by its payment',
    );
    const [event] = await t.admin<{ type: string }[]>`
      SELECT type FROM events WHERE object_id = ${created.id} AND tenant_id = ${tenant.id}`;
    expect(event).toEqual({ type: 'checkout.session.completed' });
  });

  it('the worker settles sessions nobody reads: paid ones complete, overdue ones expire, each with its event', async () => {
    const paid = await ok(await session());
    const overdue = await ok(await session({ expires_in: 1800 }));
    const open = await ok(await session());
    // The buyer paid and closed the tab, and the payment's notice to the session was lost (as a crash between the
    // payment's commit and the notice would lose it): without the session's id on the payment, no notice is sent.
    await t.admin`UPDATE payments SET metadata = '{}' WHERE id = ${paid.payment}`;
    await ok(await post(`/v1/payments/${paid.payment}/confirm`, { payment_method: card(TEST_CARDS.visa) }));
    clock.advance(1801 * 1000);
    // The frequent pass reads only the sessions past their expiry.
    await t.platform.checkout.settleExpired(1000);
    expect(await eventsOf(overdue.id)).toEqual(['checkout.session.expired']);
    expect(await statuses(paid.id, overdue.id, open.id)).toEqual({
      [paid.id]: 'open',
      [overdue.id]: 'expired',
      [open.id]: 'open',
    });
    // The sweep looks at every open session's payment.
    await t.platform.checkout.settleDue(1000);
    expect(await eventsOf(paid.id)).toEqual(['checkout.session.completed']);
    expect(await eventsOf(overdue.id)).toEqual(['checkout.session.expired']);
    expect(await eventsOf(open.id)).toEqual([]);
    expect(await statuses(paid.id, overdue.id, open.id)).toEqual({
      [paid.id]: 'complete',
      [overdue.id]: 'expired',
      [open.id]: 'open',
    });
    // A second pass finds nothing more to do for them.
    await t.platform.checkout.settleDue(1000);
    expect(await eventsOf(paid.id)).toEqual(['checkout.session.completed']);
  });

  it('the page has a strict CSP, may be framed by nobody, and refuses a forged link', async () => {
    const created = await ok(await session());
    const page = await t.app.inject({ url: pagePath(created.url) });
    expect(page.statusCode).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).not.toMatch(/<script>(?!<\/script>)|<script [^>]*>[^<]+<\/script>/);
    expect(page.body).toContain('€49.00');
    const style = /<style nonce="([^"]+)">/.exec(page.body)?.[1];
    expect(csp).toContain(`style-src 'nonce-${style}'`);
    const [head, payload, signature] = pagePath(created.url).split('/')[2].split('.');
    const forged = `${head}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    expect((await t.app.inject({ url: `/checkout/${forged}` })).statusCode).toBe(404);
  });
});

describe('payforward.js frame and script headers', () => {
  it('the card frame may be framed by https shops (and localhost in test mode only), with a strict CSP', async () => {
    const testKey = (await ok(await get('/v1/publishable_key'))).key;
    const liveKey = (await ok(await get('/v1/publishable_key', tenant.liveKey))).key;
    const frame = await t.app.inject({
      url: `/elements/card?key=${testKey}&origin=${encodeURIComponent('http://localhost:3000')}`,
    });
    expect(frame.statusCode).toBe(200);
    const csp = String(frame.headers['content-security-policy']);
    expect(csp).toMatch(/frame-ancestors 'self' https: http:\/\/localhost:\* http:\/\/127\.0\.0\.1:\*/);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(frame.headers['x-frame-options']).toBeUndefined();
    expect(frame.headers['x-content-type-options']).toBe('nosniff');
    expect(frame.headers['referrer-policy']).toBe('no-referrer');
    const live = await t.app.inject({
      url: `/elements/card?key=${liveKey}&origin=${encodeURIComponent('https://shop.example.com')}`,
    });
    expect(String(live.headers['content-security-policy'])).toMatch(/frame-ancestors 'self' https:$/);
    expect(String(live.headers['content-security-policy'])).not.toContain('http://localhost');
    expectError(await t.app.inject({ url: '/elements/card' }), 400, { type: 'invalid_request_error' });

    const script = await t.app.inject({ url: '/js/payforward.js' });
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('public, max-age=300');
    expect(script.headers['cross-origin-resource-policy']).toBe('cross-origin');
    expect(script.headers['x-content-type-options']).toBe('nosniff');
    expect(script.body).toContain('window.PayForward = PayForward');
  });

  it('/openapi.json describes the new routes', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json();
    for (const path of [
      '/v1/checkout/sessions',
      '/v1/checkout/sessions/{id}',
      '/v1/checkout/sessions/{id}/expire',
      '/v1/publishable_key',
      '/v1/publishable_key/roll',
    ])
      expect(document.paths[path], path).toBeDefined();
    expect(document.components.schemas.CheckoutSession.properties.url).toBeDefined();
    expect(document.components.securitySchemes.publishableKey).toBeDefined();
    expect(document.paths['/v1/payments/{id}/confirm'].post.security).toEqual([
      { secretKey: [] },
      { publishableKey: [] },
    ]);
    expect(document.components.schemas.Payment.properties.client_secret).toBeDefined();
  });
});

describe.skipIf(!hasBrowser)('the hosted checkout page in a real browser', { timeout: BROWSER_TEST_MS }, () => {
  for (const [name, number] of [
    ['a card', TEST_CARDS.visa],
    ['a card that needs 3-D Secure', TEST_CARDS.threeDSecure],
  ] as const)
    it(`takes ${name}, completes the session and sends the buyer to success_url`, async () => {
      const created = await ok(await session());
      const context = await browser.newContext();
      const foreign: string[] = [];
      await context.route('**/*', (route) => {
        if (new URL(route.request().url()).origin === baseUrl) return route.continue();
        foreign.push(route.request().url());
        return route.abort();
      });
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      try {
        await page.goto(created.url);
        const frame = page.frameLocator('#card iframe');
        await frame.locator('#number').fill(number);
        await frame.locator('#expiry').fill(`12 / ${String(new Date().getUTCFullYear() + 3).slice(2)}`);
        await frame.locator('#cvc').fill('123');
        await page.locator('#pay').click();
        if (number === TEST_CARDS.threeDSecure)
          await page
            .frameLocator('iframe[name="payforward-authentication"]')
            .getByRole('button', { name: 'Complete authentication' })
            .click({ timeout: BROWSER_STEP_MS });
        await page.waitForURL(`${baseUrl}/health?paid=1`, { timeout: BROWSER_STEP_MS });
      } finally {
        await context.close();
      }
      expect(foreign).toEqual([]);
      expect(violations).toEqual([]);
      const completed = await waitFor(async () => {
        const current = await ok(await get(`/v1/checkout/sessions/${created.id}`));
        return current.status === 'complete' && current;
      });
      expect(completed.payment_status).toBe('paid');
      const payment = await ok(await get(`/v1/payments/${created.payment}`));
      expect(payment).toMatchObject({ status: 'succeeded', amount_received: 4900 });
      expect(await eventsOf(created.id)).toEqual(['checkout.session.completed']);
    });
});
