import { beforeAll, describe, expect, it } from 'vitest';
import { call, card, ok, payByCard, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { asMember, newMember, type Member } from './team.js';
import { dashboardRunOfFile, expectAccessible, expectNoConsoleErrors, memberOf, openDashboard } from './dashboard.js';

// Platform-wide figures count every tenant in the database: a database of its own keeps other files' payments out.
const run = dashboardRunOfFile({}, 'dashboard_operator');
let operator: Member;

beforeAll(async () => {
  const key = run.tenant.testKey;
  for (const amount of [1500, 2500]) await payByCard(run.t.app, key, amount);
  // sim_alpha errors on this card and the payment fails over to sim_beta: an error in processor health.
  await payByCard(run.t.app, key, 3500, {}, TEST_CARDS.processingError);
  await call(run.t.app, key, 'POST', '/v1/payments', {
    amount: 700,
    currency: 'usd',
    payment_method: card(TEST_CARDS.declined),
    confirm: true,
  });
  operator = await newMember(run.t.app, run.clock, PLATFORM_KEY, 'operator_admin');
});

describe('operator console', () => {
  it('creates a tenant, changes its routing and settlement, and sets its pricing', async () => {
    const view = await openDashboard(run, operator, '/operator/tenants');
    const { page } = view;
    await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
    // By keyboard: Enter in the form submits it.
    await page.getByLabel('Name').fill('Console tenant');
    await page.getByLabel('Name').press('Enter');
    const id = (await page.getByTestId('created-tenant-id').textContent())!;
    const testKey = (await page.getByTestId('created-test-key').textContent())!;
    expect(id).toMatch(/^ten_/);
    expect(testKey).toMatch(/^sk_test_/);
    await expect.poll(() => new URL(page.url()).searchParams.get('tenant')).toBe(id);
    // Only this page is marked current in the navigation, not the Overview it sits under.
    expect(await page.locator('nav [aria-current="page"]').allTextContents()).toEqual(['Tenants']);
    const created = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${id}`));
    expect(created).toMatchObject({ name: 'Console tenant', processors: ['sim_alpha', 'sim_beta'] });

    const panel = page.getByTestId('tenant-panel');
    await panel.waitFor();
    await panel.getByLabel('Processors in order (primary first, failover after)').fill('sim_beta, sim_alpha');
    await panel.getByLabel('Settlement', { exact: true }).selectOption('instant');
    await panel.getByRole('button', { name: 'Save routing and settlement' }).click();
    await panel.getByText('Saved.').waitFor();
    const updated = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${id}`));
    expect(updated.processors).toEqual(['sim_beta', 'sim_alpha']);
    expect(updated.settlement_schedule.type).toBe('instant');
    await expect.poll(() => panel.getByTestId('tenant-routing').textContent()).toContain('sim_beta → sim_alpha');

    await panel.getByLabel('Processing (bps)', { exact: true }).fill('250');
    await panel.getByLabel('Processing fixed', { exact: true }).fill('25');
    await panel.getByRole('button', { name: 'Set pricing plan' }).click();
    await expect.poll(() => panel.getByTestId('pricing-saved').textContent()).toBe('Version 1 set for test mode.');
    // The tenant reads the plan the console set, and is charged by it.
    const plan = await ok(await call(run.t.app, testKey, 'GET', '/v1/pricing'));
    expect(plan).toMatchObject({ version: 1, type: 'blended', processing: { percent_bps: 250, fixed: 25 } });
    const preview = await ok(
      await call(run.t.app, testKey, 'POST', '/v1/fees/preview', { amount: 10_000, currency: 'usd' }),
    );
    expect(preview.fee).toBe(275);

    // A refusal is shown in words with its request id.
    await panel.getByLabel('International (bps)', { exact: true }).fill('20000');
    await panel.getByRole('button', { name: 'Set pricing plan' }).click();
    await panel.getByTestId('request-id').waitFor({ timeout: 10_000 });
    expect(await panel.getByTestId('api-error').textContent()).toContain('international_bps');

    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it("shows every tenant's volume and approval rate as the platform API counts them, and the review backlog", async () => {
    const volume = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/volume?range=7d'));
    const count = volume.data.reduce((s: number, p: { count: number }) => s + p.count, 0);
    expect(count).toBeGreaterThanOrEqual(4);
    const view = await openDashboard(run, operator, '/operator?range=7d');
    const { page } = view;
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await expect
      .poll(async () => Number((await page.getByTestId('platform-count-value').textContent())?.replace(/,/g, '')))
      .toBe(count);
    const approved = volume.data.reduce((s: number, p: { approved_count: number }) => s + p.approved_count, 0);
    const declined = volume.data.reduce((s: number, p: { declined_count: number }) => s + p.declined_count, 0);
    expect(await page.getByTestId('platform-approval-value').textContent()).toBe(
      `${(Math.round((approved * 10_000) / (approved + declined)) / 100).toFixed(2)} %`,
    );
    await page.getByTestId('backlog-value').waitFor();
    await page.getByTestId('chart').waitFor();
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('shows processor health per connector, at 1280 and 390 px', async () => {
    const health = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/processors?range=7d'));
    const alphaErrors = health.data
      .filter((p: { processor: string }) => p.processor === 'sim_alpha')
      .reduce((s: number, p: { errors: number }) => s + p.errors, 0);
    expect(alphaErrors).toBeGreaterThanOrEqual(1);
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 800 },
    ]) {
      const view = await openDashboard(run, operator, '/operator/processors?range=7d', viewport);
      const { page } = view;
      const alpha = page.getByTestId('processor-totals').getByRole('row', { name: /sim_alpha/ });
      await alpha.waitFor();
      expect(await alpha.getByRole('cell').nth(4).textContent()).toBe(String(alphaErrors));
      expect(await page.getByTestId('chart').count()).toBe(2);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
      await expectAccessible(page);
      expectNoConsoleErrors(view);
      await view.context.close();
    }
  });

  it('shows the review backlog and the reconciliation page', async () => {
    for (const [path, heading] of [
      ['/operator/reviews', 'Review backlog'],
      ['/operator/reconciliation', 'Reconciliation'],
    ]) {
      const view = await openDashboard(run, operator, path);
      await view.page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      if (path === '/operator/reviews') {
        const backlog = await ok(
          await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/review_backlog?livemode=false'),
        );
        await expect
          .poll(() => view.page.getByTestId('backlog-test-value').textContent())
          .toBe(String(backlog.open_reviews));
      }
      await expectAccessible(view.page);
      expectNoConsoleErrors(view);
      await view.context.close();
    }
  });

  it('offers read-only operator staff no change, and the API refuses theirs', async () => {
    const support = await newMember(run.t.app, run.clock, PLATFORM_KEY, 'operator_support');
    const view = await openDashboard(run, support, `/operator/tenants?tenant=${run.tenant.id}`);
    await view.page.getByTestId('tenant-panel').waitFor();
    await view.page.getByTestId('read-only').waitFor();
    expect(await view.page.getByRole('button', { name: /Create tenant|Set pricing plan|Save routing/ }).count()).toBe(
      0,
    );
    const refused = await asMember(run.t.app, support, 'PUT', `/v1/tenants/${run.tenant.id}/pricing`, {
      type: 'blended',
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('read_only_role');
    await expectAccessible(view.page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it("keeps a tenant's team out: no operator page, and the API refuses the operator's calls", async () => {
    const admin = await memberOf(run, 'admin');
    const view = await openDashboard(run, admin, '/operator/tenants');
    await view.page.getByText('No such page.').waitFor();
    expect(await view.page.getByRole('link', { name: 'Processor health' }).count()).toBe(0);
    expectNoConsoleErrors(view);
    await view.context.close();

    for (const [method, url, body] of [
      ['POST', '/v1/tenants', { name: 'Not mine to make' }],
      ['GET', `/v1/tenants/${run.tenant.id}`, undefined],
      ['PUT', `/v1/tenants/${run.tenant.id}/pricing`, { type: 'blended' }],
      ['GET', '/v1/analytics/platform/volume', undefined],
      ['GET', '/v1/analytics/platform/processors', undefined],
      ['GET', '/v1/analytics/platform/review_backlog', undefined],
    ] as const) {
      const refused = await asMember(run.t.app, admin, method, url, body);
      expect(refused.statusCode, `${method} ${url}`).toBe(403);
    }
  });
});
