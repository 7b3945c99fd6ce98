import { describe, expect, it } from 'vitest';
import { TOTP } from 'otpauth';
import { INITIAL_JS_BUDGET, initialJavaScript } from '../dashboard/bundle-budget.js';
import { PayForward, PayForwardError } from '../sdk/src/index.js';
import { call, ok, PLATFORM_KEY } from './helpers.js';
import { asMember, newMember, outboxToken, PASSWORD, totpCode } from './team.js';
import {
  buildDashboard,
  dashboardRunOfFile,
  expectAccessible,
  expectNoConsoleErrors,
  memberOf,
  openDashboard,
} from './dashboard.js';

const run = dashboardRunOfFile();

describe('serving the dashboard', () => {
  it('answers index.html with a strict CSP for every client route, and hashed assets for a year', async () => {
    for (const url of ['/dashboard/', '/dashboard/payments/pay_123', '/dashboard/operator/tenants?x=1']) {
      const page = await run.t.app.inject({ url });
      expect(page.statusCode, url).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      const csp = String(page.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      const nonce = /'nonce-([^']+)'/.exec(csp)![1];
      expect(page.body).toContain(`<meta name="csp-nonce" content="${nonce}"`);
      expect(page.headers['x-frame-options']).toBe('DENY');
    }
    const html = (await run.t.app.inject({ url: '/dashboard/' })).body;
    const script = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)![1];
    const asset = await run.t.app.inject({ url: script });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toMatch(/^text\/javascript/);
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await run.t.app.inject({ url: '/dashboard/assets/nope.js' })).statusCode).toBe(404);
    expect((await run.t.app.inject({ url: '/dashboard' })).headers.location).toBe('/dashboard/');
    expect((await run.t.app.inject({ url: '/invitations/abc_123' })).headers.location).toBe(
      '/dashboard/invitations/abc_123',
    );
  });

  it('keeps the initial JavaScript within 300 KB gzipped (pages are separate chunks)', () => {
    const { files, gzipBytes } = initialJavaScript(buildDashboard());
    expect(files.length).toBeGreaterThan(0);
    expect(gzipBytes).toBeLessThanOrEqual(INITIAL_JS_BUDGET);
    expect(files.some((file) => /Payments|PaymentDetail|Login/.test(file))).toBe(false);
  });
});

describe('the SDK in session mode', () => {
  it('sends the cookie and, on state changes only, the CSRF token; a key is refused alongside', async () => {
    const member = await memberOf(run, 'admin');
    const seen: Request[] = [];
    // Node's fetch keeps no cookie jar: the test adds the cookie a browser would send.
    const asBrowser = (input: RequestInfo | URL) => {
      const request = input as Request;
      seen.push(request.clone());
      const headers = new Headers(request.headers);
      headers.set('cookie', `pf_session=${member.cookie}`);
      return fetch(new Request(request, { headers }));
    };
    const client = new PayForward({
      baseUrl: run.baseUrl,
      session: { csrfToken: () => member.csrf },
      retry: { maxRetries: 0 },
      fetch: asBrowser,
    });
    const session = (await client.api.GET('/v1/sessions/current')).data!;
    expect(session).toMatchObject({ role: 'admin', livemode: false });
    expect(session.scopes).toContain('refunds:write');
    const customer = await client.customers.create({ email: 'session@example.com' });
    expect(customer.id).toMatch(/^cus_/);
    expect(seen[0].headers.get('x-csrf-token')).toBeNull();
    expect(seen[1].headers.get('x-csrf-token')).toBe(member.csrf);
    expect(seen.every((request) => request.headers.get('authorization') === null)).toBe(true);
    seen.length = 0;
    const noToken = new PayForward({
      baseUrl: run.baseUrl,
      session: { csrfToken: () => null },
      retry: { maxRetries: 0 },
      fetch: asBrowser,
    });
    const refused = await noToken.customers.create({}).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PayForwardError);
    expect((refused as PayForwardError).code).toBe('csrf_token_invalid');
    expect(() => new PayForward({ baseUrl: run.baseUrl })).toThrow(/exactly one of apiKey and session/);
  });

  it("a session's scopes follow its role: an analyst holds no refunds:write", async () => {
    const analyst = await memberOf(run, 'analyst');
    const session = await ok(
      await run.t.app.inject({ url: '/v1/sessions/current', headers: { cookie: `pf_session=${analyst.cookie}` } }),
    );
    expect(session.scopes).toContain('payments:read');
    expect(session.scopes).not.toContain('refunds:write');
  });
});

describe('signing in', () => {
  it('password then TOTP lands on Home with the navigation; sign-out returns to the sign-in', async () => {
    const member = await memberOf(run, 'developer');
    const view = await openDashboard(run, null, '/payments');
    const { page } = view;
    await page.getByLabel('Email').fill(member.email);
    await page.getByLabel(/^Password/).fill(PASSWORD);
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByText('Code from your authenticator app').waitFor();
    await page.getByLabel('Code from your authenticator app').first().click();
    await page.keyboard.type(totpCode(member.secret, run.clock));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('navigation', { name: 'Pages' }).waitFor();
    // The URL asked for before sign-in is where the person lands.
    expect(new URL(page.url()).pathname).toBe('/dashboard/payments');
    await expect(page.getByTestId('mode').textContent()).resolves.toBe('Test');
    for (const name of ['Home', 'Payments', 'Customers', 'Analytics', 'Balance', 'Team', 'Audit log'])
      await page.getByRole('link', { name, exact: true }).waitFor();
    expect(await page.getByRole('link', { name: 'Tenants' }).count()).toBe(0);
    await expectAccessible(page);
    const cookie = (await view.context.cookies()).find((c) => c.name === 'pf_session')!.value;
    const current = (c: string) =>
      run.t.app.inject({ url: '/v1/sessions/current', headers: { cookie: `pf_session=${c}` } });
    expect((await current(cookie)).statusCode).toBe(200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Continue' }).waitFor();
    expect((await current(cookie)).statusCode).toBe(401);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('a wrong password is shown in words with its request id', async () => {
    const member = await memberOf(run, 'analyst');
    const view = await openDashboard(run, null);
    await view.page.getByLabel('Email').fill(member.email);
    await view.page.getByLabel(/^Password/).fill('not the password at all');
    await view.page.getByRole('button', { name: 'Continue' }).click();
    const alert = view.page.getByTestId('api-error');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/invalid_credentials/);
    expect(await view.page.getByTestId('request-id').textContent()).toMatch(/^req_/);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('an invited member sets a password, enrols TOTP, sees the recovery codes once, and is in', async () => {
    const email = `invited.${Date.now()}@example.com`;
    await ok(await call(run.t.app, run.tenant.liveKey, 'POST', '/v1/users', { email, role: 'support' }));
    const token = await outboxToken(run.t.app, email);
    const view = await openDashboard(run, null);
    const { page } = view;
    // The emailed link is PUBLIC_URL/invitations/<token>, which redirects into the dashboard.
    await page.goto(`${run.baseUrl}/invitations/${token}`);
    await page.getByLabel('New password').fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    const secret = (await page.getByTestId('totp-secret').textContent())!;
    await expectAccessible(page);
    await page.getByLabel('Code from your authenticator app').first().click();
    await page.keyboard.type(new TOTP({ secret }).generate({ timestamp: run.clock.now() }));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByTestId('recovery-codes').waitFor();
    expect(await page.getByTestId('recovery-codes').locator('li').count()).toBe(10);
    await page.getByRole('button', { name: /continue/ }).click();
    await page.getByRole('navigation', { name: 'Pages' }).waitFor();
    await expect(page.getByTestId('role').textContent()).resolves.toBe('support');
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('switching to live data signs in again with live preselected, and the session acts in live mode', async () => {
    const member = await memberOf(run, 'admin');
    const view = await openDashboard(run, member, '/');
    const { page } = view;
    await page.getByRole('button', { name: 'Switch to live' }).click();
    await page.getByRole('button', { name: 'Continue' }).waitFor();
    expect(new URL(page.url()).searchParams.get('mode')).toBe('live');
    expect(await page.getByRole('radio', { name: 'Live data' }).isChecked()).toBe(true);
    await page.getByLabel('Email').fill(member.email);
    await page.getByLabel(/^Password/).fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Code from your authenticator app').first().click();
    await page.keyboard.type(totpCode(member.secret, run.clock));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByTestId('mode').filter({ hasText: 'Live' }).waitFor();
    const cookie = (await view.context.cookies()).find((c) => c.name === 'pf_session')!.value;
    const session = await ok(
      await run.t.app.inject({ url: '/v1/sessions/current', headers: { cookie: `pf_session=${cookie}` } }),
    );
    expect(session.livemode).toBe(true);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('a session ended elsewhere sends the person back to the sign-in at the next call', async () => {
    const member = await memberOf(run, 'analyst');
    const view = await openDashboard(run, member, '/customers');
    const { page } = view;
    await page.getByRole('heading', { name: 'Customers' }).waitFor();
    expect((await asMember(run.t.app, member, 'DELETE', '/v1/sessions/current')).statusCode).toBe(200);
    await page.getByRole('link', { name: 'Payments', exact: true }).click();
    await page.getByRole('button', { name: 'Continue' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Pages' }).count()).toBe(0);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('the operator console', () => {
  it("operator staff get the console's navigation and no tenant page", async () => {
    const operator = await newMember(run.t.app, run.clock, PLATFORM_KEY, 'operator_admin');
    const view = await openDashboard(run, operator, '/');
    const { page } = view;
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/dashboard/operator');
    const navigation = page.getByRole('navigation', { name: 'Pages' });
    for (const name of ['Overview', 'Tenants', 'Processor health', 'Reconciliation', 'Review backlog'])
      await navigation.getByRole('link', { name, exact: true }).waitFor();
    expect(await navigation.getByRole('link', { name: 'Payments', exact: true }).count()).toBe(0);
    expect(await page.getByTestId('mode').count()).toBe(0);
    await page.goto(`${run.baseUrl}/dashboard/payments`);
    await page.getByText('No such page.').waitFor();
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});
