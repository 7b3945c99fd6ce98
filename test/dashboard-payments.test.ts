import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'csv-parse/sync';
import type { Page } from 'playwright-core';
import { call, card, createTenant, newCustomer, ok, payByCard, TEST_CARDS, type TestTenant } from './helpers.js';
import { waitFor } from './process.js';
import { asMember } from './team.js';
import { inScope } from '../src/db/index.js';
import { newId } from '../src/lib/ids.js';
import { chargeTransaction } from '../src/modules/ledger/postings.js';
import { LedgerService } from '../src/modules/ledger/service.js';
import {
  dashboardRunOfFile,
  expectAccessible,
  expectNoConsoleErrors,
  memberOf,
  navigateInApp,
  openDashboard,
} from './dashboard.js';

const DAY_MS = 86_400_000;
const run = dashboardRunOfFile();

/** A tenant of the test's own, so lists and searches see only what the test made. */
async function freshTenant(name: string): Promise<TestTenant> {
  return createTenant(run.t.app, name);
}

/** The visible table's rows as text, cell by cell (all rows: the test sets are smaller than the rendered window). */
const tableRows = (page: Page) =>
  page
    .getByTestId('data-table')
    .locator('tbody tr[data-row-id]')
    .evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((td) => td.textContent ?? '')));

const rowIds = (page: Page) =>
  page
    .getByTestId('data-table')
    .locator('tbody tr[data-row-id]')
    .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-row-id')));

describe('Home', () => {
  it("shows the balance against the API's balance at the same instant yesterday", async () => {
    const tenant = await freshTenant('Balance yesterday');
    const scope = { tenantId: tenant.id, livemode: false };
    // A capture stamped 30 hours ago, posted through the ledger on a clock of that time: yesterday's balance.
    const past = new Date(Date.now() - 30 * 3_600_000);
    const ledger = new LedgerService(run.t.platform.sql, () => past);
    await inScope(run.t.platform.sql, scope, (tx) =>
      ledger.post(tx, scope, [
        chargeTransaction({
          paymentId: 'pay_yesterday',
          transactionId: newId('txn', past),
          currency: 'usd',
          amount: 10_000,
          fee: 320,
          feeDetails: [],
          instant: false,
          availableOn: past,
        }),
      ]),
    );
    await payByCard(run.t.app, tenant.testKey, 2_500);
    const view = await openDashboard(run, await memberOf(run, 'admin', tenant), '/');
    const { page } = view;
    const card = page.getByTestId('balance');
    await page.getByTestId('balance-change').filter({ hasText: 'vs this time yesterday' }).waitFor();
    const at = Number(await card.getAttribute('data-at'));
    expect(Math.abs(at - (Date.now() / 1000 - 86_400))).toBeLessThan(60);
    const total = (funds: Record<'available' | 'pending' | 'reserved', { amount: number; currency: string }[]>) =>
      [...funds.available, ...funds.pending, ...funds.reserved]
        .filter((f) => f.currency === 'usd')
        .reduce((sum, f) => sum + f.amount, 0);
    const then = total(await ok(await call(run.t.app, tenant.testKey, 'GET', `/v1/balance?at=${at}`)));
    const now = total(await ok(await call(run.t.app, tenant.testKey, 'GET', '/v1/balance')));
    expect(then).toBe(10_000 - 320);
    expect(Number(await card.getAttribute('data-yesterday'))).toBe(then);
    expect(Number(await card.getAttribute('data-value'))).toBe(now);
    expect(now).toBeGreaterThan(then);
    expect(await page.getByTestId('balance-change').textContent()).toBe(
      `+$${((now - then) / 100).toFixed(2)} vs this time yesterday`,
    );
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  // The page holds no timer that refetches its figures or feed: a change can only come from the event stream. Waiting
  // on a deadline (not asserting a latency, which a loaded CI machine cannot promise) keeps the test honest; the
  // latency is printed for the record.
  it('shows a payment created through the API in the live feed as it happens, and moves the figures, without a reload', async () => {
    const tenant = await freshTenant('Live feed');
    const admin = await memberOf(run, 'admin', tenant);
    await payByCard(run.t.app, tenant.testKey, 1500);
    const view = await openDashboard(run, admin, '/');
    const { page } = view;
    await page.getByTestId('count-value').filter({ hasText: /^1$/ }).waitFor();
    await page.getByTestId('live-status').filter({ hasText: 'Live' }).waitFor();
    await expectAccessible(page);
    await page.evaluate(() => Object.assign(window, { sameDocument: true }));
    const figureFetches: number[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/v1/analytics/summary') figureFetches.push(Date.now());
    });
    // The payment's events reach the page while payByCard still waits for its answers: the figures may be fetched
    // again before it returns, never before it starts.
    const started = Date.now();
    const payment = await payByCard(run.t.app, tenant.testKey, 4200);
    const created = Date.now();
    await page.locator(`[data-testid="live-feed"] tr[data-row-id="${payment.id}"]`).waitFor({ timeout: 15_000 });
    const inFeed = Date.now() - created;
    await page.getByTestId('volume-value').filter({ hasText: '$57.00' }).waitFor({ timeout: 15_000 });
    const inFigures = Date.now() - created;
    console.info(`live feed: the payment showed after ${inFeed} ms, the figures moved after ${inFigures} ms`);
    expect(await page.getByTestId('count-value').textContent()).toBe('2');
    expect(figureFetches.length).toBeGreaterThan(0);
    expect(figureFetches.every((at) => at >= started)).toBe(true);
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  // Its timeout leaves room for up to a minute's wait for midnight to pass (below), on top of its own time.
  it("shows the analytics API's totals for today and for the same hours of yesterday, and the balance", async () => {
    const tenant = await freshTenant('Home figures');
    const key = tenant.testKey;
    // "Today" is a UTC day: payments made just before midnight would be yesterday's by the time the page asks.
    // Start at least a minute clear of midnight, then hold the server's clock at the payments' instant.
    await waitFor(() => DAY_MS - (Date.now() % DAY_MS) > 60_000, 70_000, 'a minute clear of midnight UTC');
    await payByCard(run.t.app, key, 1500);
    const refunded = await payByCard(run.t.app, key, 2500);
    await ok(await call(run.t.app, key, 'POST', '/v1/refunds', { payment: refunded.id, amount: 500 }));
    await call(run.t.app, key, 'POST', '/v1/payments', {
      amount: 700,
      currency: 'usd',
      payment_method: card(TEST_CARDS.declined),
      confirm: true,
    });
    run.clock.freeze(Date.now());
    onTestFinished(() => run.clock.thaw());
    const summary = async (from: number, until: number) =>
      (await ok(await call(run.t.app, key, 'GET', `/v1/analytics/summary?from=${from}&until=${until}`))).data.find(
        (f: { currency: string }) => f.currency === 'usd',
      );
    const periodOf = async (page: Page) => {
      const figures = page.getByTestId('figures');
      const from = Number(await figures.getAttribute('data-from'));
      const until = Number(await figures.getAttribute('data-until'));
      // Today's period starts at 00:00 UTC: its end as the hour of the day, 01:00 to 24:00.
      return { from, until, hour: `${String((until - from) / 3600).padStart(2, '0')}:00 UTC` };
    };
    const raw = async (page: Page, id: string) => Number(await page.getByTestId(id).getAttribute('data-value'));

    const view = await openDashboard(run, await memberOf(run, 'admin', tenant), '/');
    const { page } = view;
    await page.getByTestId('count-value').filter({ hasText: /^3$/ }).waitFor();
    const period = await periodOf(page);
    const today = await summary(period.from, period.until);
    expect(today).toMatchObject({ count: 3, volume: 4000, approved_count: 2, declined_count: 1 });
    expect(await raw(page, 'count')).toBe(today.count);
    expect(await raw(page, 'volume')).toBe(today.volume);
    expect(await raw(page, 'fees')).toBe(today.fees);
    expect(await raw(page, 'net')).toBe(today.net);
    expect(await raw(page, 'approval')).toBe(today.approval_rate_bps / 10_000);
    expect(await page.getByTestId('count').textContent()).toContain(`+3 vs yesterday until ${period.hour}`);
    expect(await page.getByTestId('figures-period').textContent()).toContain(`yesterday from 00:00 to ${period.hour}`);
    const balance = await ok(await call(run.t.app, key, 'GET', '/v1/balance'));
    const usd = (part: { amount: number; currency: string }[]) =>
      part.filter((b) => b.currency === 'usd').reduce((sum, b) => sum + b.amount, 0);
    expect(await raw(page, 'balance')).toBe(usd(balance.available) + usd(balance.pending) + usd(balance.reserved));
    // The tenant was made seconds ago: the balance API refuses yesterday, and the page says why there is no comparison.
    expect(await page.getByTestId('balance-change').textContent()).toBe(
      'no comparison: the account is less than a day old',
    );
    expectNoConsoleErrors(view);
    await view.context.close();

    // A day later by the platform's clock, those payments are yesterday's: the comparison is the API's yesterday.
    run.clock.advance(DAY_MS);
    try {
      const later = await openDashboard(run, await memberOf(run, 'admin', tenant), '/');
      await later.page.getByTestId('count-value').filter({ hasText: /^0$/ }).waitFor();
      const next = await periodOf(later.page);
      expect(next.from).toBe(period.from + 86_400);
      const yesterday = await summary(next.from - 86_400, next.until - 86_400);
      expect(yesterday).toMatchObject({ count: today.count, volume: today.volume, fees: today.fees });
      expect(await later.page.getByTestId('count').textContent()).toContain(
        `−${yesterday.count} vs yesterday until ${next.hour}`,
      );
      expect(await later.page.getByTestId('volume').textContent()).toContain(
        `−$${(yesterday.volume / 100).toFixed(2)} vs yesterday until ${next.hour}`,
      );
      expect(await later.page.getByTestId('net').textContent()).toContain(
        `−$${(yesterday.net / 100).toFixed(2)} vs yesterday`,
      );
      expectNoConsoleErrors(later);
      await later.context.close();
    } finally {
      run.clock.advance(-DAY_MS);
    }

    // Support reads payments but not analytics: the live feed alone, and no refusal shown.
    const support = await openDashboard(run, await memberOf(run, 'support', tenant), '/');
    await support.page.locator(`[data-testid="live-feed"] tr[data-row-id="${refunded.id}"]`).waitFor();
    expect(await support.page.getByTestId('figures-hidden').isVisible()).toBe(true);
    expect(await support.page.getByTestId('api-error').count()).toBe(0);
    expectNoConsoleErrors(support);
    await support.context.close();
  }, 120_000);
});

describe('Payments', () => {
  let tenant: TestTenant;
  let byEmail: string[];
  let byDebit: string[];
  let other: string;

  beforeAll(async () => {
    tenant = await freshTenant('Search');
    const customer = await newCustomer(run.t.app, tenant.testKey, { email: 'Ada.Lovelace@example.com' });
    byEmail = [
      (await payByCard(run.t.app, tenant.testKey, 1200, { customer })).id,
      (await payByCard(run.t.app, tenant.testKey, 3400, { customer })).id,
    ];
    byDebit = [(await payByCard(run.t.app, tenant.testKey, 5600, {}, TEST_CARDS.debit)).id];
    other = (await payByCard(run.t.app, tenant.testKey, 7800)).id;
  });

  it('searches by last4 and by email, with the filters in the URL', async () => {
    const analyst = await memberOf(run, 'analyst', tenant);
    const view = await openDashboard(run, analyst, `/payments?last4=${TEST_CARDS.debit.slice(-4)}`);
    const { page } = view;
    await page.getByTestId('row-count').filter({ hasText: '1 row loaded' }).waitFor();
    expect(await rowIds(page)).toEqual(byDebit);
    await expectAccessible(page);
    await page.getByLabel('Card last 4').fill('');
    await page.getByLabel('Customer email').fill('ada.lovelace@example.com');
    await page.getByTestId('row-count').filter({ hasText: '2 rows loaded' }).waitFor();
    expect(await rowIds(page)).toEqual([...byEmail].reverse());
    expect(new URL(page.url()).searchParams.get('email')).toBe('ada.lovelace@example.com');
    expect(new URL(page.url()).searchParams.get('last4')).toBeNull();
    // The URL alone reproduces the view.
    const shared = await openDashboard(run, analyst, `/payments${new URL(page.url()).search}`);
    await shared.page.getByTestId('row-count').filter({ hasText: '2 rows loaded' }).waitFor();
    expect(await rowIds(shared.page)).toEqual([...byEmail].reverse());
    expectNoConsoleErrors(view);
    expectNoConsoleErrors(shared);
    await view.context.close();
    await shared.context.close();
  });

  it('exports exactly the filtered set as CSV, equal to the table', async () => {
    const analyst = await memberOf(run, 'analyst', tenant);
    const view = await openDashboard(run, analyst, '/payments?min=20&max=80');
    const { page } = view;
    await page.getByTestId('row-count').filter({ hasText: '3 rows loaded' }).waitFor();
    const table = await tableRows(page);
    expect(table.map((row) => row[0])).toEqual([other, byDebit[0], byEmail[1]]);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    const csv = parse(await readFile((await download.path())!, 'utf8')) as string[][];
    const headers = await page.getByTestId('data-table').locator('thead th').allTextContents();
    expect(csv[0]).toEqual(headers);
    expect(csv.slice(1)).toEqual(table);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('shows an invalid filter in words, and an empty result as such', async () => {
    const analyst = await memberOf(run, 'analyst', tenant);
    const view = await openDashboard(run, analyst, '/payments?min=ten');
    await view.page.getByText('An amount must be a number such as 12.50.').waitFor();
    await view.page.goto(`${run.baseUrl}/dashboard/payments?email=nobody@example.com`);
    await view.page.getByText('No payments match these filters.').waitFor();
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Payment detail', () => {
  it('refunds from the detail page: the timeline, the refunds and the ledger show it', async () => {
    const tenant = await freshTenant('Refunds');
    const admin = await memberOf(run, 'admin', tenant);
    const payment = await payByCard(run.t.app, tenant.testKey, 5000);
    const view = await openDashboard(run, admin, `/payments/${payment.id}`);
    const { page } = view;
    const timeline = page.getByTestId('timeline');
    await timeline.getByText('payment.succeeded').waitFor();
    await page.getByRole('region', { name: 'Processor attempts' }).getByText('sim_alpha').waitFor();
    await page.getByRole('region', { name: 'Fees and ledger' }).getByText('charge').waitFor();
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Refund' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Amount to refund (USD)').fill('12.50');
    await expectAccessible(page);
    await dialog.getByRole('button', { name: 'Refund the payment' }).click();
    await dialog.waitFor({ state: 'detached' });
    await timeline.getByText('refund.succeeded').waitFor();
    await page.getByTestId('fact-refunded').filter({ hasText: '$12.50' }).waitFor();
    const ledger = page.getByRole('region', { name: 'Fees and ledger' });
    await ledger.getByRole('cell', { name: 'refund', exact: true }).waitFor();
    await ledger.getByRole('cell', { name: '-$12.50' }).first().waitFor();
    const refunds = await ok(await call(run.t.app, tenant.testKey, 'GET', `/v1/refunds?payment=${payment.id}`));
    expect(refunds.data).toHaveLength(1);
    expect(refunds.data[0]).toMatchObject({ amount: 1250, status: 'succeeded' });
    const balance = await ok(await call(run.t.app, tenant.testKey, 'GET', '/v1/balance_transactions?type=refund'));
    expect(balance.data.map((t: { amount: number }) => t.amount)).toEqual([-1250]);
    expectNoConsoleErrors(view);
    await view.context.close();
  }, 60_000);

  it('an analyst sees no action, and the API refuses the same refund with 403', async () => {
    const tenant = await freshTenant('Read only');
    const analyst = await memberOf(run, 'analyst', tenant);
    const payment = await payByCard(run.t.app, tenant.testKey, 5000);
    const view = await openDashboard(run, analyst, `/payments/${payment.id}`);
    const { page } = view;
    await page.getByTestId('timeline').getByText('payment.succeeded').waitFor();
    expect(await page.getByRole('button', { name: 'Refund' }).count()).toBe(0);
    expect(await page.getByTestId('payment-actions').count()).toBe(0);
    await page.getByText('Your role does not see webhook deliveries.').waitFor();
    const refused = await asMember(run.t.app, analyst, 'POST', '/v1/refunds', { payment: payment.id, amount: 100 });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.type).toBe('permission_error');
    expect(refused.json().error.request_id).toMatch(/^req_/);
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('captures part of an authorization behind a confirmation, at phone width', async () => {
    const tenant = await freshTenant('Capture');
    const developer = await memberOf(run, 'developer', tenant);
    const payment = await payByCard(run.t.app, tenant.testKey, 8000, { capture_method: 'manual' });
    expect(payment.status).toBe('requires_capture');
    const view = await openDashboard(run, developer, `/payments/${payment.id}`, { width: 390, height: 844 });
    const { page } = view;
    await page.getByRole('button', { name: 'Capture' }).click();
    await page.getByRole('dialog').getByLabel('Amount to capture (USD)').fill('30.00');
    await page.getByRole('dialog').getByRole('button', { name: 'Capture the payment' }).click();
    await page.getByTestId('timeline').getByText('payment.succeeded').waitFor();
    await page.getByTestId('fact-received').filter({ hasText: '$30.00' }).waitFor();
    expect(await page.getByRole('button', { name: 'Refund' }).count()).toBe(1);
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('long lists', () => {
  it('pages by cursor, renders only the rows in view, and exports every page of the filtered set', async () => {
    const tenant = await freshTenant('Long list');
    const analyst = await memberOf(run, 'analyst', tenant);
    const ids: string[] = [];
    for (let batch = 0; batch < 11; batch++)
      ids.push(
        ...(
          await Promise.all(
            Array.from({ length: 10 }, (_, i) => payByCard(run.t.app, tenant.testKey, 1000 + batch * 10 + i)),
          )
        ).map((p) => p.id),
      );
    const view = await openDashboard(run, analyst, '/payments');
    const { page } = view;
    await page.getByTestId('row-count').filter({ hasText: '100 rows loaded, more available' }).waitFor();
    expect((await rowIds(page)).length).toBeLessThan(60);
    await page.getByRole('button', { name: 'Load more' }).click();
    await page
      .getByTestId('row-count')
      .filter({ hasText: /^110 rows loaded$/ })
      .waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    const csv = parse(await readFile((await download.path())!, 'utf8')) as string[][];
    expect(csv).toHaveLength(111);
    expect(
      csv
        .slice(1)
        .map((row) => row[0])
        .sort(),
    ).toEqual([...ids].sort());
    expectNoConsoleErrors(view);
    await view.context.close();
    // 110 payments made through the API first: on a busy machine that alone can take most of the default 30 s.
  }, 90_000);
});

describe('phone width', () => {
  it('Home, Payments and Customers fit 390 px without sideways scrolling and stay accessible', async () => {
    const tenant = await freshTenant('Phone');
    const admin = await memberOf(run, 'admin', tenant);
    await payByCard(run.t.app, tenant.testKey, 2500);
    // One load, then the app's own navigation between the pages.
    const view = await openDashboard(run, admin, '/', { width: 390, height: 844 });
    for (const [path, ready] of [
      ['/', 'live-feed'],
      ['/payments', 'data-table'],
      ['/customers', 'empty'],
    ]) {
      if (path !== '/') await navigateInApp(view.page, path);
      await view.page.getByTestId(ready).waitFor();
      const width = await view.page.evaluate(() => document.documentElement.scrollWidth);
      expect(width, path).toBeLessThanOrEqual(390);
      await expectAccessible(view.page);
      expectNoConsoleErrors(view);
    }
    await view.context.close();
  });
});

describe('keyboard and failovers', () => {
  it('reaches a payment by keyboard alone, and its detail shows the failover with each latency', async () => {
    const tenant = await freshTenant('Keyboard');
    const support = await memberOf(run, 'support', tenant);
    const payment = await payByCard(run.t.app, tenant.testKey, 5600, {}, TEST_CARDS.processingError);
    const view = await openDashboard(run, support, '/payments');
    const { page } = view;
    await page.getByTestId('row-count').filter({ hasText: '1 row loaded' }).waitFor();
    let focused = '';
    for (let presses = 0; presses < 60 && focused !== payment.id; presses++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.textContent ?? '');
    }
    expect(focused).toBe(payment.id);
    await page.keyboard.press('Enter');
    const attempts = page.getByRole('region', { name: 'Processor attempts' });
    await attempts.getByText('failover').waitFor();
    const rows = await attempts
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows.map((row) => [row[1], row[2]])).toEqual([
      ['sim_alpha', 'error'],
      ['sim_beta', 'succeeded'],
    ]);
    for (const row of rows) expect(row[4]).toMatch(/^\d+ ms$/);
    expect(new URL(page.url()).pathname).toBe(`/dashboard/payments/${payment.id}`);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Customers', () => {
  it('searches by email, exports the table as CSV, and links to the payments', async () => {
    const tenant = await freshTenant('Customers');
    const support = await memberOf(run, 'support', tenant);
    const grace = await newCustomer(run.t.app, tenant.testKey, { email: 'grace@example.com', name: 'Grace Hopper' });
    await newCustomer(run.t.app, tenant.testKey, { email: 'alan@example.com', name: 'Alan Turing' });
    const view = await openDashboard(run, support, '/customers?email=GRACE@example.com');
    const { page } = view;
    await page.getByTestId('row-count').filter({ hasText: '1 row loaded' }).waitFor();
    const table = await tableRows(page);
    expect(table.map((row) => row.slice(0, 3))).toEqual([[grace, 'grace@example.com', 'Grace Hopper']]);
    await expectAccessible(page);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    const csv = parse(await readFile((await download.path())!, 'utf8')) as string[][];
    expect(csv.slice(1)).toEqual(table);
    await page.getByRole('link', { name: grace }).click();
    await page.getByRole('heading', { name: 'Payments' }).waitFor();
    expect(new URL(page.url()).searchParams.get('customer')).toBe(grace);
    await page.getByText('No payments match these filters.').waitFor();
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});
