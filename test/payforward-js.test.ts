import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { bootApp, createTenant, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';
import { freePort, waitFor } from './process.js';
import { BROWSER_STEP_MS, BROWSER_TEST_MS, chromiumAvailable, launchChromium } from './services.js';

/**
 * A shop on another origin (a second HTTP server on another port) integrates payforward.js as a real shop would:
 * its page mounts the card fields, its server creates the payment with the secret key and hands the page the
 * client_secret, and the page confirms. The platform and the shop are both 127.0.0.1, on different ports: different
 * origins, so the browser's same-origin rules apply between them exactly as between two domains.
 */
let t: TestApp;
let tenant: TestTenant;
let browser: Browser;
let platformUrl: string;
let shopUrl: string;
let shop: Server;
let publishableKey: string;
const hasBrowser = chromiumAvailable();

async function platform(method: string, path: string, body?: unknown) {
  const response = await fetch(`${platformUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${tenant.testKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** The shop's checkout page: its own inline script, with payforward.js from the platform. */
const shopPage = (key: string) => `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop checkout</h1><div id="card"></div><button id="pay">Pay</button><pre id="result"></pre>
<script src="${platformUrl}/js/payforward.js"></script>
<script>
  const payforward = PayForward(${JSON.stringify(key)});
  const card = payforward.mountCard('#card');
  card.on('change', (event) => { document.body.dataset.complete = String(event.complete); });
  document.getElementById('pay').addEventListener('click', async () => {
    const created = await fetch('/create-payment', { method: 'POST' }).then((r) => r.json());
    const result = await payforward.confirmPayment(created.client_secret, { payment_method: card });
    document.getElementById('result').textContent = JSON.stringify({ id: created.id, ...result });
  });
</script></body></html>`;

beforeAll(async () => {
  const port = await freePort();
  platformUrl = `http://127.0.0.1:${port}`;
  t = await bootApp({ PUBLIC_URL: platformUrl });
  await t.app.listen({ port, host: '127.0.0.1' });
  tenant = await createTenant(t.app, 'payforward.js shop');
  publishableKey = (await platform('GET', '/v1/publishable_key')).body.key;
  const shopPort = await freePort();
  shopUrl = `http://127.0.0.1:${shopPort}`;
  shop = createServer(async (request, response) => {
    if (request.method === 'POST' && request.url === '/create-payment') {
      // The shop's server side: the secret key never leaves it, the card never reaches it.
      const created = await platform('POST', '/v1/payments', { amount: 4900, currency: 'eur' });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ id: created.body.id, client_secret: created.body.client_secret }));
      return;
    }
    const key = new URL(request.url ?? '/', shopUrl).searchParams.get('key') ?? publishableKey;
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(shopPage(key));
  });
  await new Promise<void>((resolve) => shop.listen(shopPort, '127.0.0.1', resolve));
  if (!hasBrowser) return;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => shop?.close(resolve));
  await t?.close();
});

interface Recorded {
  url: string;
  method: string;
  body: string;
  frame: string;
}

/**
 * A browser context that records every request (with its body and the frame that made it), and reaches nothing but
 * the two local servers.
 */
async function shopContext(): Promise<{ context: BrowserContext; page: Page; requests: Recorded[] }> {
  const context = await browser.newContext();
  const requests: Recorded[] = [];
  context.on('request', (request) => {
    let frame = '';
    try {
      frame = request.frame().url();
    } catch {
      // A service worker's request has no frame; the test pages start none.
    }
    requests.push({ url: request.url(), method: request.method(), body: request.postData() ?? '', frame });
  });
  await context.route('**/*', (route) => {
    const { origin } = new URL(route.request().url());
    return origin === platformUrl || origin === shopUrl ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  return { context, page, requests };
}

async function fillCard(page: Page, number: string) {
  const frame = page.frameLocator('#card iframe');
  await frame.locator('#number').fill(number);
  await frame.locator('#expiry').fill(`12 / ${String(new Date().getUTCFullYear() + 3).slice(2)}`);
  await frame.locator('#cvc').fill('123');
  await waitFor(
    async () => (await page.locator('body').getAttribute('data-complete')) === 'true',
    10_000,
    'card complete',
  );
}

async function result(page: Page): Promise<Record<string, any>> {
  const text = await waitFor(
    async () => (await page.locator('#result').innerText()) || false,
    BROWSER_STEP_MS,
    'the result',
  );
  return JSON.parse(text);
}

/** The card number may travel only from the card frame, on the platform's origin, to the platform. */
function expectPanOnlyToPlatform(requests: Recorded[], pan: string) {
  const carrying = requests.filter((r) => r.url.includes(pan) || r.body.includes(pan));
  expect(carrying.length).toBeGreaterThan(0);
  for (const request of carrying) {
    expect(new URL(request.url).origin).toBe(platformUrl);
    expect(request.frame.startsWith(`${platformUrl}/elements/card?`)).toBe(true);
    expect(request.url).toBe(`${platformUrl}/v1/payment_methods`);
  }
  expect(requests.some((r) => new URL(r.url).origin === shopUrl && r.method === 'POST')).toBe(true);
}

describe.skipIf(!hasBrowser)('payforward.js on a shop page of another origin', { timeout: BROWSER_TEST_MS }, () => {
  it('collects the card in the platform’s frame, the shop confirms with the client_secret, and the payment succeeds', async () => {
    const { context, page, requests } = await shopContext();
    try {
      await page.goto(shopUrl);
      await fillCard(page, TEST_CARDS.visa);
      // The shop's own script cannot reach into the card frame: it is another origin.
      const reach = await page.evaluate(() => {
        const frame = document.querySelector<HTMLIFrameElement>('#card iframe')!;
        let error = '';
        try {
          (frame.contentWindow as Window).document.querySelector('input');
        } catch (e) {
          error = (e as Error).name;
        }
        return { contentDocument: frame.contentDocument === null, error, src: frame.src };
      });
      expect(reach.contentDocument).toBe(true);
      expect(reach.error).toBe('SecurityError');
      expect(reach.src.startsWith(`${platformUrl}/elements/card?`)).toBe(true);
      expect(await page.locator('#number').count()).toBe(0);

      await page.locator('#pay').click();
      const outcome = await result(page);
      expect(outcome.error).toBeUndefined();
      expect(outcome.payment).toMatchObject({ id: outcome.id, status: 'succeeded', amount: 4900 });
      // The shop page gets the limited view only.
      expect(outcome.payment).not.toHaveProperty('attempts');
      expectPanOnlyToPlatform(requests, TEST_CARDS.visa);
    } finally {
      await context.close();
    }
    const { body: payments } = await platform('GET', '/v1/payments?limit=1');
    const [payment] = payments.data;
    expect(payment.status).toBe('succeeded');
    expect(payment.amount_received).toBe(4900);
    const { body: method } = await platform('GET', `/v1/payment_methods/${payment.payment_method}`);
    expect(method.card.last4).toBe('4242');
  });

  it('handles 3-D Secure in a modal on the platform’s origin and resolves with the final status', async () => {
    const { context, page, requests } = await shopContext();
    try {
      await page.goto(shopUrl);
      await fillCard(page, TEST_CARDS.threeDSecure);
      await page.locator('#pay').click();
      const challenge = page.frameLocator('iframe[name="payforward-authentication"]');
      await challenge.getByRole('button', { name: 'Complete authentication' }).click({ timeout: BROWSER_STEP_MS });
      const outcome = await result(page);
      expect(outcome.error).toBeUndefined();
      expect(outcome.payment).toMatchObject({ id: outcome.id, status: 'succeeded', next_action: null });
      // The modal is gone once authentication is over.
      expect(await page.locator('iframe[name="payforward-authentication"]').count()).toBe(0);
      expectPanOnlyToPlatform(requests, TEST_CARDS.threeDSecure);
      const authentication = requests.find((r) => r.url.startsWith(`${platformUrl}/3ds/`));
      expect(authentication).toBeDefined();
      const { body: payment } = await platform('GET', `/v1/payments/${outcome.id}`);
      expect(payment.status).toBe('succeeded');
      expect(payment.attempts.map((a: { status: string }) => a.status)).toContain('requires_action');
    } finally {
      await context.close();
    }
  });

  it('reports a decline to the page with the payment left for another card', async () => {
    const { context, page } = await shopContext();
    try {
      await page.goto(shopUrl);
      await fillCard(page, TEST_CARDS.declined);
      await page.locator('#pay').click();
      const outcome = await result(page);
      expect(outcome.error).toMatchObject({ type: 'card_error', code: 'card_declined' });
      expect(outcome.payment).toMatchObject({ id: outcome.id, status: 'requires_payment_method' });
    } finally {
      await context.close();
    }
  });

  it('a live-mode key’s card frame refuses to be framed by an http page', async () => {
    const live = (await (
      await fetch(`${platformUrl}/v1/publishable_key`, { headers: { authorization: `Bearer ${tenant.liveKey}` } })
    ).json()) as { key: string };
    const { context, page, requests } = await shopContext();
    try {
      await page.goto(`${shopUrl}/?key=${live.key}`);
      await waitFor(
        () => requests.some((r) => r.url.startsWith(`${platformUrl}/elements/card?`)),
        10_000,
        'the card frame request',
      );
      // Blocked by frame-ancestors: the frame never runs card.js, so it never asks for it.
      await page.waitForLoadState('load');
      const frame = page.frames().find((f) => f.url().startsWith(`${platformUrl}/elements/card`));
      expect(
        frame === undefined ||
          (await frame
            .locator('#number')
            .count()
            .catch(() => 0)) === 0,
      ).toBe(true);
      expect(requests.some((r) => r.url === `${platformUrl}/elements/card.js`)).toBe(false);
    } finally {
      await context.close();
    }
  });
});
