import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { bootApp, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';
import { freePort, waitFor } from './process.js';
import { BROWSER_STEP_MS, BROWSER_TEST_MS, chromiumAvailable, launchChromium } from './services.js';

let t: TestApp;
let tenant: TestTenant;
let browser: Browser;
let baseUrl: string;
// Without Chromium (a bare developer machine) the browser tests are skipped; under CI=true they fail.
const hasBrowser = chromiumAvailable();

beforeAll(async () => {
  // The 3-D Secure links carry PUBLIC_URL, so the port is chosen before the app boots.
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  t = await bootApp({ PUBLIC_URL: baseUrl });
  await t.app.listen({ port, host: '127.0.0.1' });
  tenant = await createTenant(t.app, 'Browser tenant');
  if (!hasBrowser) return;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

/** A response the challenge page's script received from POST …/complete. */
interface Completion {
  status: number;
  body: Record<string, any>;
}

/**
 * A page that may only talk to our server: anything else (fonts, CDNs) is refused. Answers to
 * POST …/complete are recorded, since the page navigates away right after reading them.
 */
async function localPage(): Promise<{ page: Page; blocked: string[]; completions: Completion[] }> {
  const page = await browser.newPage();
  const blocked: string[] = [];
  const completions: Completion[] = [];
  await page.route('**/*', async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (url.protocol === 'data:' || url.protocol === 'blob:') return route.continue();
    if (url.hostname !== '127.0.0.1') {
      blocked.push(url.href);
      return route.abort();
    }
    if (request.method() === 'POST' && url.pathname.endsWith('/complete')) {
      const response = await route.fetch();
      completions.push({ status: response.status(), body: await response.json() });
      return route.fulfill({ response });
    }
    return route.continue();
  });
  return { page, blocked, completions };
}

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${tenant.testKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

async function threeDSecurePayment() {
  const created = await api('POST', '/v1/payments', {
    amount: 4200,
    currency: 'eur',
    payment_method: card(TEST_CARDS.threeDSecure),
    confirm: true,
    return_url: `${baseUrl}/health`,
  });
  expect(created.status).toBe(200);
  expect(created.body.status).toBe('requires_action');
  expect(created.body.next_action.type).toBe('redirect_to_url');
  const url: string = created.body.next_action.redirect_to_url.url;
  expect(url.startsWith(`${baseUrl}/3ds/`)).toBe(true);
  return { id: created.body.id as string, url };
}

/**
 * Clicks a challenge button and returns what POST …/complete answered; by default waits for the redirect to
 * return_url.
 */
async function clickChallenge(
  page: Page,
  completions: Completion[],
  button: 'Complete authentication' | 'Fail authentication',
  redirect = true,
) {
  const before = completions.length;
  await page.getByRole('button', { name: button }).click();
  const completion = await waitFor(() => completions[before], BROWSER_STEP_MS, 'the challenge answer');
  if (redirect) await page.waitForURL(`${baseUrl}/health`, { timeout: BROWSER_STEP_MS });
  return completion;
}

describe('API reference', () => {
  it.skipIf(!hasBrowser)(
    '/docs renders PayForward title and operations, and every request it makes goes to our own origin',
    async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const requested: string[] = [];
      // Everything the page could reach out with: requests (its own and its workers'), websockets, workers.
      context.on('request', (request) => requested.push(request.url()));
      page.on('websocket', (socket) => requested.push(socket.url()));
      page.on('worker', (worker) => requested.push(worker.url()));
      context.on('serviceworker', (worker) => requested.push(worker.url()));
      // Nothing may leave the machine even if the assertion below were to fail.
      await context.route('**/*', (route) =>
        new URL(route.request().url()).origin === baseUrl ? route.continue() : route.abort(),
      );
      try {
        const response = await page.goto(`${baseUrl}/docs/`);
        expect(response?.status()).toBe(200);
        await page.getByText('PayForward API').first().waitFor({ state: 'visible', timeout: BROWSER_STEP_MS });
        await page.getByText('Create a payment').first().waitFor({ state: 'attached', timeout: BROWSER_STEP_MS });
        expect(await page.title()).toContain('PayForward');
        await page.waitForLoadState('networkidle', { timeout: BROWSER_STEP_MS });
        expect(requested.length).toBeGreaterThan(2);
        const foreign = requested.filter((url) => {
          const { protocol, origin } = new URL(url);
          return protocol !== 'data:' && protocol !== 'blob:' && origin !== baseUrl;
        });
        expect(foreign).toEqual([]);
        expect(requested).toContain(`${baseUrl}/openapi.json`);
      } finally {
        await context.close();
      }
    },
    BROWSER_TEST_MS,
  );

  it("/openapi.json names PUBLIC_URL as its server when set, otherwise the request's host", async () => {
    const configured = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as { servers: { url: string }[] };
    expect(configured.servers).toEqual([{ url: baseUrl }]);
    const unset = await bootApp({ PUBLIC_URL: '' });
    try {
      const response = await unset.app.inject({ url: '/openapi.json', headers: { host: 'api.example.test:8443' } });
      const document = response.json();
      expect(document.servers).toEqual([{ url: 'http://api.example.test:8443' }]);
      const create = document.paths['/v1/payments'].post['x-codeSamples'];
      expect(create[0].source).toContain('curl -X POST http://api.example.test:8443/v1/payments');
    } finally {
      await unset.close();
    }
  });

  it('/openapi.json has curl, Node and Python samples for every operation, pointing at the public URL', async () => {
    const response = await fetch(`${baseUrl}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as {
      info: { title: string };
      paths: Record<
        string,
        Record<string, { summary?: string; 'x-codeSamples'?: { lang: string; label: string; source: string }[] }>
      >;
    };
    expect(document.info.title).toBe('PayForward API');
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method, op })),
    );
    expect(operations.length).toBeGreaterThan(10);
    expect(operations.some(({ op }) => op.summary === 'Create a payment')).toBe(true);
    for (const { path, method, op } of operations) {
      const samples = op['x-codeSamples'] ?? [];
      const labels = samples.map((s) => s.label).sort();
      expect(labels, `${method} ${path}`).toEqual(['Node', 'Python', 'SDK', 'curl']);
      const curl = samples.find((s) => s.label === 'curl')!.source;
      expect(curl, `${method} ${path}`).toContain(`curl -X ${method.toUpperCase()} ${baseUrl}`);
      expect(samples.find((s) => s.label === 'Node')!.source).toContain(`fetch('${baseUrl}`);
      expect(samples.find((s) => s.label === 'Python')!.source).toContain(`requests.${method}(`);
    }
  });
});

describe.skipIf(!hasBrowser)('3-D Secure challenge in a real browser', { timeout: BROWSER_TEST_MS }, () => {
  it("'Complete authentication' authorizes the payment and returns the customer to return_url", async () => {
    const { id, url } = await threeDSecurePayment();
    const { page, blocked, completions } = await localPage();
    try {
      await page.goto(url);
      expect(await page.locator('#status').innerText()).toContain('requires_action');
      expect(await page.locator('body').innerText()).toContain(id);
      const completed = await clickChallenge(page, completions, 'Complete authentication');
      expect(completed).toEqual({ status: 200, body: { id, status: 'succeeded', return_url: `${baseUrl}/health` } });
      expect(await page.locator('body').innerText()).toContain('ok');
      expect(blocked).toEqual([]);
    } finally {
      await page.close();
    }
    const payment = await waitFor(async () => {
      const { body } = await api('GET', `/v1/payments/${id}`);
      return body.status !== 'requires_action' && body;
    });
    expect(payment.status).toBe('succeeded');
    expect(payment.amount_received).toBe(4200);
    expect(payment.next_action).toBeNull();
    const authorizations = payment.attempts.filter((a: { operation: string }) => a.operation === 'authorize');
    expect(authorizations.map((a: { status: string }) => a.status)).toEqual(['requires_action', 'succeeded']);
  });

  it("'Fail authentication' sends the payment back to requires_payment_method", async () => {
    const { id, url } = await threeDSecurePayment();
    const { page, completions } = await localPage();
    try {
      await page.goto(url);
      const failed = await clickChallenge(page, completions, 'Fail authentication');
      expect(failed).toEqual({
        status: 200,
        body: { id, status: 'requires_payment_method', return_url: `${baseUrl}/health` },
      });
    } finally {
      await page.close();
    }
    const { body: payment } = await api('GET', `/v1/payments/${id}`);
    expect(payment.status).toBe('requires_payment_method');
    expect(payment.last_payment_error.code).toBe('payment_intent_authentication_failure');
    expect(payment.amount_received).toBe(0);
  });

  it('a challenge link cannot be used twice once the payment has moved on', async () => {
    const { id, url } = await threeDSecurePayment();
    const { page, completions } = await localPage();
    try {
      await page.goto(url);
      expect((await clickChallenge(page, completions, 'Complete authentication')).body.status).toBe('succeeded');
      // The link is single-use: opening it again shows no challenge.
      const again = await page.goto(url);
      expect(again?.status()).toBe(404);
      expect(await page.locator('body').innerText()).toContain('already used');
      expect(await page.getByRole('button').count()).toBe(0);
    } finally {
      await page.close();
    }
    const { body: payment } = await api('GET', `/v1/payments/${id}`);
    expect(payment.status).toBe('succeeded');
  });
});
