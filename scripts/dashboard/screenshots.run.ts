import { mkdirSync } from 'node:fs';
import { it } from 'vitest';
import type { Page } from 'playwright-core';
import { call, card, newCustomer, payByCard, TEST_CARDS } from '../../test/helpers.js';
import { asMember } from '../../test/team.js';
import { dashboardRunOfFile, expectNoConsoleErrors, memberOf, openDashboard } from '../../test/dashboard.js';

/**
 * Regenerates docs/screenshots/dashboard-*.png (the README shows them) from a run like the browser tests: the real
 * platform on a fresh database, a tenant with a little activity made through the API, Chromium at 1280×800 and at
 * 390 px. Run with `npm run dashboard:screenshots` (same services as the tests: DATABASE_URL, REDIS_URL, AMQP_URL).
 */
const OUT = new URL('../../docs/screenshots/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });
const run = dashboardRunOfFile();

const shot = (page: Page, name: string) => page.screenshot({ path: `${OUT}dashboard-${name}.png`, fullPage: false });

it('screenshots of the main pages', async () => {
  const { app } = run.t;
  const key = run.tenant.testKey;
  const people = [
    ['ada@example.com', 'Ada Lovelace'],
    ['grace@example.com', 'Grace Hopper'],
    ['alan@example.com', 'Alan Turing'],
    ['edsger@example.com', 'Edsger Dijkstra'],
  ];
  const customers = [];
  for (const [email, name] of people) customers.push(await newCustomer(app, key, { email, name }));
  const amounts = [4900, 12900, 2500, 8750, 19900, 3200, 6400, 15000];
  for (const [i, amount] of amounts.entries())
    await payByCard(app, key, amount, {
      customer: customers[i % customers.length],
      metadata: { order_id: `10${40 + i}` },
    });
  await call(app, key, 'POST', '/v1/payments', {
    amount: 7300,
    currency: 'usd',
    customer: customers[1],
    payment_method: card(TEST_CARDS.declined),
    confirm: true,
  });
  const failover = await payByCard(app, key, 5600, { customer: customers[0] }, TEST_CARDS.processingError);
  await payByCard(app, key, 9900, { capture_method: 'manual', customer: customers[2] });
  const admin = await memberOf(run, 'admin');
  await asMember(app, admin, 'POST', '/v1/refunds', { payment: failover.id, amount: 1500 });

  const view = await openDashboard(run, admin, '/');
  const { page } = view;
  await page.getByTestId('live-status').filter({ hasText: 'Live' }).waitFor();
  await page
    .getByTestId('count-value')
    .filter({ hasText: /^1[01]$/ })
    .waitFor();
  await shot(page, 'home');
  await page.goto(`${run.baseUrl}/dashboard/payments`);
  await page.getByTestId('row-count').waitFor();
  await shot(page, 'payments');
  await page.goto(`${run.baseUrl}/dashboard/payments?email=ada%40example.com&min=20`);
  await page.getByTestId('row-count').waitFor();
  await shot(page, 'payments-search');
  await page.goto(`${run.baseUrl}/dashboard/payments/${failover.id}`);
  await page.getByTestId('timeline').getByText('refund.succeeded').waitFor();
  await page.getByText('failover').waitFor();
  await page.getByText('No webhook endpoint received these events.').waitFor();
  await page.screenshot({ path: `${OUT}dashboard-payment-detail.png`, fullPage: true });
  await page.goto(`${run.baseUrl}/dashboard/customers`);
  await page.getByTestId('row-count').waitFor();
  await shot(page, 'customers');
  expectNoConsoleErrors(view);
  await view.context.close();

  const phone = await openDashboard(run, admin, '/', { width: 390, height: 844 });
  await phone.page.getByTestId('count-value').waitFor();
  await phone.page.getByRole('button', { name: 'Open the navigation' }).click();
  // A trial click waits until the sliding navigation has come to rest.
  await phone.page
    .getByRole('navigation', { name: 'Pages' })
    .getByRole('link', { name: 'Payments' })
    .click({ trial: true });
  await phone.page.screenshot({ path: `${OUT}dashboard-phone-navigation.png` });
  await phone.context.close();

  const signIn = await openDashboard(run, null, '/');
  await signIn.page.getByRole('button', { name: 'Continue' }).waitFor();
  await shot(signIn.page, 'sign-in');
  await signIn.context.close();
});
