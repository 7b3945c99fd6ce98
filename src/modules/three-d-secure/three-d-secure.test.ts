import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootWithTenants,
  call,
  card,
  LIVE_CARD,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('3-D Secure tenant');
});
afterAll(() => t.close());

/** The path of a challenge link (PUBLIC_URL is not where the test app listens). */
const pathOf = (url: string) => new URL(url).pathname;
const page = (url: string) => t.app.inject({ method: 'GET', url: pathOf(url) });
const complete = (url: string, outcome: 'succeeded' | 'failed') =>
  t.app.inject({ method: 'POST', url: `${pathOf(url)}/complete`, payload: { outcome } });

function expectRefused(response: Awaited<ReturnType<typeof page>>) {
  expect(response.statusCode, response.body).toBe(404);
  expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
}

async function challenged(paymentId?: string) {
  const payment = paymentId
    ? await ok(
        await call(t.app, tenant.testKey, 'POST', `/v1/payments/${paymentId}/confirm`, {
          payment_method: card(TEST_CARDS.threeDSecure),
        }),
      )
    : await ok(
        await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
          amount: 2500,
          currency: 'usd',
          payment_method: card(TEST_CARDS.threeDSecure),
          confirm: true,
        }),
      );
  expect(payment.status).toBe('requires_action');
  return { id: payment.id as string, url: payment.next_action.redirect_to_url.url as string };
}

const authorizations = async (id: string) =>
  (await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${id}`))).attempts
    .filter((a: { operation: string }) => a.operation === 'authorize')
    .map((a: { status: string }) => a.status);

describe('the 3-D Secure challenge link', () => {
  it('serves its page with no inline script, a strict CSP, and framing only by https (or local test) shops', async () => {
    const { url } = await challenged();
    const response = await page(url);
    expect(response.statusCode).toBe(200);
    const csp = String(response.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toMatch(/frame-ancestors 'self' https: http:\/\/localhost:\*/);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.body).toContain('<script src="/elements/three-d-secure.js"></script>');
    expect(response.body).not.toMatch(/<script>/);
  });

  it('is bound to the attempt it was issued for: a newer confirmation voids the earlier link', async () => {
    const first = await challenged();
    expect((await page(first.url)).statusCode).toBe(200);
    expect((await ok(await complete(first.url, 'failed'))).status).toBe('requires_payment_method');
    const second = await challenged(first.id);
    expect(second.id).toBe(first.id);
    expect(second.url).not.toBe(first.url);

    // The payment waits for authentication again, but only the newest link may give it.
    expectRefused(await page(first.url));
    expectRefused(await complete(first.url, 'succeeded'));
    expect((await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${first.id}`))).status).toBe(
      'requires_action',
    );
    expect(await authorizations(first.id)).toEqual(['requires_action', 'requires_action']);

    expect((await page(second.url)).statusCode).toBe(200);
    expect((await ok(await complete(second.url, 'succeeded'))).status).toBe('succeeded');
  });

  it('works once: a completed link can neither complete again nor show its page', async () => {
    const { id, url } = await challenged();
    expect((await ok(await complete(url, 'succeeded'))).status).toBe('succeeded');
    expectRefused(await complete(url, 'succeeded'));
    expectRefused(await complete(url, 'failed'));
    expectRefused(await page(url));
    expect(await authorizations(id)).toEqual(['requires_action', 'succeeded']);
  });

  it('completes once when completions race', async () => {
    const { id, url } = await challenged();
    const outcomes = ['succeeded', 'failed', 'succeeded', 'failed', 'succeeded', 'succeeded'] as const;
    const responses = await Promise.all(outcomes.map((outcome) => complete(url, outcome)));
    const accepted = responses.filter((r) => r.statusCode === 200);
    expect(accepted).toHaveLength(1);
    for (const refused of responses.filter((r) => r.statusCode !== 200)) {
      expect(refused.statusCode).toBeGreaterThanOrEqual(400);
      expect(refused.statusCode).toBeLessThan(500);
    }
    const payment = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${id}`));
    expect(payment.status).toBe(accepted[0].json().status);
    // At most one authorization followed the challenge, whichever outcome won.
    expect((await authorizations(id)).length).toBeLessThanOrEqual(2);
    expect(payment.amount_received).toBe(payment.status === 'succeeded' ? 2500 : 0);
  });

  it('refuses live mode: the simulated issuer is test-only, so a live payment gets no page and no completion', async () => {
    // A live payment that a live issuer asked to authenticate (set by hand: live mode has no test card for it).
    const live = await ok(
      await call(t.app, tenant.liveKey, 'POST', '/v1/payments', {
        amount: 2500,
        currency: 'usd',
        payment_method: card(LIVE_CARD),
        confirm: true,
        capture_method: 'manual',
      }),
    );
    await t.admin`UPDATE payments SET status = 'requires_action' WHERE id = ${live.id}`;
    const attempt = live.attempts.at(-1).id as string;
    const url = await t.platform.threeDSecure.challengeUrl({ tenantId: tenant.id, livemode: true }, live.id, attempt);
    expectRefused(await page(url));
    expectRefused(await complete(url, 'succeeded'));
    expectRefused(await complete(url, 'failed'));
    const after = await ok(await call(t.app, tenant.liveKey, 'GET', `/v1/payments/${live.id}`));
    expect(after.status).toBe('requires_action');
    expect(after.attempts).toHaveLength(live.attempts.length);
  });

  it('refuses a malformed or forged link', async () => {
    const { url } = await challenged();
    const [head, body, signature] = pathOf(url).slice('/3ds/'.length).split('.');
    const forged = `${head}.${body}.${signature.slice(0, -4)}AAAA`;
    expectRefused(await t.app.inject({ method: 'GET', url: `/3ds/${forged}` }));
    expectRefused(
      await t.app.inject({ method: 'POST', url: `/3ds/${forged}/complete`, payload: { outcome: 'succeeded' } }),
    );
  });
});
