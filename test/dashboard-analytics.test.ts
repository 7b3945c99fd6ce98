import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { call, card, createTenant, ok, payByCard, TEST_CARDS } from './helpers.js';
import { dashboardRunOfFile, expectAccessible, expectNoConsoleErrors, memberOf, openDashboard } from './dashboard.js';

const run = dashboardRunOfFile();

interface ListedPayment {
  amount: number;
  amount_received: number;
  fee: number | null;
  status: string;
  currency: string;
}

/** Every test-mode payment of the run's tenant, through the list API. */
async function listedPayments(): Promise<ListedPayment[]> {
  const all: ListedPayment[] = [];
  let cursor = '';
  for (;;) {
    const page = await ok(
      await call(
        run.t.app,
        run.tenant.testKey,
        'GET',
        `/v1/payments?limit=100${cursor && `&starting_after=${cursor}`}`,
      ),
    );
    all.push(...page.data);
    if (!page.has_more) return all;
    cursor = page.data.at(-1).id;
  }
}

beforeAll(async () => {
  const key = run.tenant.testKey;
  for (const amount of [1250, 4999, 10_000]) await payByCard(run.t.app, key, amount);
  await payByCard(run.t.app, key, 2500, {}, TEST_CARDS.international);
  const refunded = await payByCard(run.t.app, key, 8000);
  await ok(await call(run.t.app, key, 'POST', '/v1/refunds', { payment: refunded.id, amount: 3000 }));
  for (const number of [TEST_CARDS.declined, TEST_CARDS.insufficientFunds])
    await call(run.t.app, key, 'POST', '/v1/payments', {
      amount: 700,
      currency: 'usd',
      payment_method: card(number),
      confirm: true,
    });
  await ok(await call(run.t.app, key, 'POST', '/v1/payments', { amount: 900, currency: 'usd' }));
});

const figure = async (page: import('playwright-core').Page, id: string) =>
  page.getByTestId(`figure-${id}`).getAttribute('data-value');

describe('Analytics page', () => {
  it('shows the same figures as the listed payments and the summary API for the period', async () => {
    const payments = await listedPayments();
    expect(payments.length).toBe(8);
    const summary = await ok(await call(run.t.app, run.tenant.testKey, 'GET', '/v1/analytics/summary?range=7d'));
    const usd = summary.data.find((f: { currency: string }) => f.currency === 'usd');

    const analyst = await memberOf(run, 'analyst');
    const view = await openDashboard(run, analyst, '/analytics?range=7d');
    const { page } = view;
    await page.getByRole('heading', { name: 'Analytics', level: 1 }).waitFor();
    await page.getByTestId('figure-count').waitFor();

    const sum = (pick: (p: ListedPayment) => number) => payments.reduce((total, p) => total + pick(p), 0);
    expect(Number(await figure(page, 'count'))).toBe(payments.length);
    expect(Number(await figure(page, 'amount'))).toBe(sum((p) => p.amount));
    expect(Number(await figure(page, 'volume'))).toBe(sum((p) => p.amount_received));
    expect(Number(await figure(page, 'fees'))).toBe(sum((p) => p.fee ?? 0));
    expect(Number(await figure(page, 'refunds'))).toBe(3000);
    expect(Number(await figure(page, 'declined'))).toBe(2);
    // Five approved (captured) against two declined; the unconfirmed payment is neither.
    expect(Number(await figure(page, 'approval'))).toBe(Math.round((5 / 7) * 10_000));
    for (const [id, key] of [
      ['count', 'count'],
      ['volume', 'volume'],
      ['fees', 'fees'],
      ['net', 'net'],
      ['approval', 'approval_rate_bps'],
      ['refunds', 'refunds_amount'],
      ['disputes', 'disputes_amount'],
      ['fraud', 'fraud_rate_bps'],
    ])
      expect(await figure(page, id), id).toBe(String(usd[key] ?? ''));
    // What a person reads is the same number, formatted.
    await expect
      .poll(() => page.getByTestId('figure-volume-value').textContent())
      .toBe(`$${(sum((p) => p.amount_received) / 100).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`);

    // Decline reasons and the brand breakdown come from the same period.
    const reasons = page.getByTestId('card-decline-reasons');
    await expect.poll(() => reasons.getByRole('img').getAttribute('aria-label')).toContain('generic_decline 1');
    await expect.poll(() => page.getByTestId('breakdown-table').getByRole('row').count()).toBeGreaterThan(1);

    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it("downloads a chart's numbers as CSV equal to the time series API", async () => {
    const analyst = await memberOf(run, 'analyst');
    const view = await openDashboard(run, analyst, '/analytics?range=7d&interval=day');
    const { page } = view;
    const card = page.getByTestId('card-count');
    await card.getByTestId('chart').waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card.getByRole('button', { name: 'Download Payments as CSV' }).click(),
    ]);
    const rows = parse(await readFile((await download.path())!, 'utf8'), { columns: true }) as Record<string, string>[];
    const api = await ok(
      await call(
        run.t.app,
        run.tenant.testKey,
        'GET',
        '/v1/analytics/timeseries?range=7d&interval=day&metric=count&currency=usd&compare=previous',
      ),
    );
    const byDay = new Map(
      (api.data as { start: number; value: number }[]).map((p) => [
        new Date(p.start * 1000).toISOString().slice(0, 10),
        p,
      ]),
    );
    expect(rows.length).toBe(api.data.length);
    for (const row of rows) expect(Number(row.value), row.bucket_start).toBe(byDay.get(row.bucket_start)!.value);
    expect(rows.reduce((total, row) => total + Number(row.value), 0)).toBe(8);
    expect(rows.every((row) => row.previous_value === '0')).toBe(true);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('keeps range and interval in the URL, moves with the keyboard, and works 390 px wide', async () => {
    const analyst = await memberOf(run, 'analyst');
    const view = await openDashboard(run, analyst, '/analytics?range=today', { width: 390, height: 800 });
    const { page } = view;
    await page.getByTestId('figure-count').waitFor();
    expect(await page.getByRole('radio', { name: 'Hourly' }).isChecked()).toBe(true);
    await page.getByRole('radio', { name: 'Today' }).focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => new URL(page.url()).searchParams.get('range')).toBe('7d');
    await page.getByText('Custom', { exact: true }).click();
    await page.getByLabel('From (UTC)').fill('2026-02-10');
    await page.getByLabel('To (UTC, inclusive)').fill('2026-02-01');
    await page.getByText('the second not before the first').waitFor();
    await page.getByLabel('From (UTC)').fill('2026-01-01');
    await page.getByLabel('To (UTC, inclusive)').fill('2026-01-31');
    await expect
      .poll(() => page.getByTestId('period').textContent())
      .toContain('2026-01-01 00:00 – 2026-02-01 00:00 UTC');
    expect(new URL(page.url()).searchParams.get('from')).toBe('2026-01-01');
    await page.getByTestId('empty').first().waitFor();
    // The page is no wider than the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('shows the empty state to a tenant with no payments, and refuses a role without analytics:read', async () => {
    const other = await createTenant(run.t.app, 'Quiet tenant');
    const admin = await memberOf(run, 'admin', other);
    const view = await openDashboard(run, admin, '/analytics?range=30d');
    await view.page.getByText('No payments in this period.').first().waitFor();
    expect(await figure(view.page, 'count')).toBe('0');
    expectNoConsoleErrors(view);
    await view.context.close();

    const support = await memberOf(run, 'support');
    const refused = await openDashboard(run, support, '/analytics');
    await refused.page.getByTestId('api-error').first().waitFor();
    expect(await refused.page.getByTestId('api-error').first().textContent()).toContain('analytics:read');
    await refused.context.close();
  });
});
