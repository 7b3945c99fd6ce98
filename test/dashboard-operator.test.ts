import { beforeAll, describe, expect, it } from 'vitest';
import { call, card, createTenant, expectError, ok, payByCard, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { newId } from '../src/lib/ids.js';
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
    const create = page.getByRole('region', { name: 'Create a tenant' });
    await create.getByLabel('Name').fill('Console tenant');
    await create.getByLabel('Name').press('Enter');
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
    // The page now loads the tenant list beside the forms: up to about 20 s on a busy shared machine.
  }, 60_000);

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

  it('lists tenants from the API a hundred at a time, and suspends and reactivates one', async () => {
    // More tenants than a page holds, written straight to the table (their keys do not matter here).
    const bulk = Array.from({ length: 100 }, (_, i) => ({
      id: newId('ten'),
      name: `Bulk ${String(i).padStart(3, '0')}`,
    }));
    await run.t.admin`INSERT INTO tenants (id, name)
      SELECT * FROM unnest(${bulk.map((t) => t.id)}::text[], ${bulk.map((t) => t.name)}::text[])`;
    const target = await createTenant(run.t.app, 'Suspend me');
    const listed = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/tenants?limit=100'));
    expect(listed.has_more).toBe(true);

    const view = await openDashboard(run, operator, '/operator/tenants');
    const { page } = view;
    const table = page.getByRole('region', { name: 'All tenants' });
    await expect.poll(() => table.getByTestId('row-count').textContent()).toBe('100 rows loaded, more available');
    expect(await table.locator('tbody tr[data-row-id]').first().getAttribute('data-row-id')).toBe(listed.data[0].id);
    await table.getByRole('button', { name: 'Load more' }).click();
    const total =
      (
        await ok(
          await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/tenants?starting_after=' + listed.data[99].id + '&limit=100'),
        )
      ).data.length + 100;
    await expect.poll(() => table.getByTestId('row-count').textContent()).toBe(`${total} rows loaded`);

    // Filtered by the start of the name (in the URL), then opened from the list.
    await table.getByLabel('Tenant name starts with').fill('suspend');
    await expect.poll(() => new URL(page.url()).searchParams.get('name')).toBe('suspend');
    await expect.poll(() => table.getByTestId('row-count').textContent()).toBe('1 row loaded');
    await table.getByRole('button', { name: 'Suspend me' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('tenant')).toBe(target.id);
    const panel = page.getByTestId('tenant-panel');
    await panel.getByRole('button', { name: 'Suspend', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Suspend tenant' });
    // No suspension without a reason.
    expect(await dialog.getByRole('button', { name: 'Suspend tenant' }).isDisabled()).toBe(true);
    await dialog.getByLabel('Reason (shown to the tenant)').fill('Chargebacks over the limit');
    await expectAccessible(page);
    await dialog.getByRole('button', { name: 'Suspend tenant' }).click();
    await panel.getByTestId('tenant-suspended').waitFor();
    expect(await panel.getByTestId('tenant-suspended').textContent()).toContain('Chargebacks over the limit');
    const suspended = await ok(await call(run.t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${target.id}`));
    expect(suspended).toMatchObject({ status: 'suspended', suspension_reason: 'Chargebacks over the limit' });
    expectError(await call(run.t.app, target.testKey, 'GET', '/v1/payments'), 403, { code: 'account_suspended' });
    // The list reads the change too.
    await expect.poll(() => table.getByTestId('tenant-status').textContent()).toBe('suspended');
    await expectAccessible(page);

    await panel.getByRole('button', { name: 'Reactivate', exact: true }).click();
    await page
      .getByRole('dialog', { name: 'Reactivate tenant' })
      .getByRole('button', { name: 'Reactivate tenant' })
      .click();
    await expect.poll(() => panel.getByTestId('tenant-status').textContent()).toBe('active');
    expect((await call(run.t.app, target.testKey, 'GET', '/v1/payments')).statusCode).toBe(200);
    expectNoConsoleErrors(view);
    await view.context.close();
    // A hundred rows, two dialogs and three axe runs: about 20 s on a busy shared machine.
  }, 90_000);

  it("tells a suspended tenant's member so in words, and leads back to the sign-in", async () => {
    const tenant = await createTenant(run.t.app, 'Suspended shop');
    const member = await memberOf(run, 'admin', tenant);
    await ok(
      await call(run.t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'KYC expired' }),
    );
    const view = await openDashboard(run, member, '/payments');
    const { page } = view;
    const alert = page.getByRole('alert').filter({ hasText: 'This account is suspended' });
    await alert.waitFor();
    expect(await alert.textContent()).toContain('KYC expired');
    expect(await alert.getByTestId('request-id').textContent()).toMatch(/^req_/);
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Back to sign-in' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect((await view.context.cookies()).map((cookie) => cookie.name)).not.toContain('pf_session');
    // The session was ended on the server, not only forgotten by the page: reactivated, the tenant's old cookie is
    // no session.
    await ok(await call(run.t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/reactivate`));
    expectError(await asMember(run.t.app, member, 'GET', '/v1/payments'), 401, { code: 'session_expired' });
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it("shows every tenant's review backlog with its oldest review's age", async () => {
    const payment = await payByCard(run.t.app, run.tenant.testKey, 4200);
    await run.t.admin`
      INSERT INTO fraud_reviews (id, tenant_id, livemode, payment_id, status, opened_reason, created_at)
      VALUES (${newId('frv')}, ${run.tenant.id}, false, ${payment.id}, 'open', 'rule', now() - interval '3 hours')`;
    const backlog = await ok(
      await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/review_backlog?livemode=false'),
    );
    const mine = backlog.tenants.find((t: { tenant: string }) => t.tenant === run.tenant.id);
    const view = await openDashboard(run, operator, '/operator/reviews');
    await view.page.getByRole('heading', { name: 'Review backlog', level: 1 }).waitFor();
    await expect
      .poll(() => view.page.getByTestId('backlog-test-value').textContent())
      .toBe(String(backlog.open_reviews));
    const row = view.page.locator(`tr[data-row-id="${run.tenant.id}"]`);
    await row.waitFor();
    expect(await row.getByRole('cell').allTextContents()).toEqual([
      `Dashboard tenant (${run.tenant.id})`,
      String(mine.open_reviews),
      expect.stringMatching(/^3 h \d+ min$/),
      expect.any(String),
    ]);
    await expectAccessible(view.page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it("lists every tenant's reconciliation discrepancies as the API does", async () => {
    const report = newId('recon');
    await run.t.admin`
      INSERT INTO reconciliation_reports (id, tenant_id, livemode, processor, report_date, currency, processor_count,
        processor_amount, ledger_count, ledger_amount, matched_count, matched_amount, missing_in_ledger_count,
        missing_in_ledger_amount, missing_in_report_count, missing_in_report_amount, amount_mismatch_count,
        amount_mismatch_amount)
      VALUES (${report}, ${run.tenant.id}, false, 'sim_beta', '2026-11-25', 'usd', 2, 3499, 2, 2000, 0, 0, 1, 1500, 0,
        0, 1, 1999)`;
    for (const [status, processorAmount, ledgerAmount] of [
      ['missing_in_ledger', 1500, null],
      ['amount_mismatch', 1999, 2000],
    ] as const)
      await run.t.admin`
        INSERT INTO reconciliation_items (id, report_id, tenant_id, livemode, status, type, reference, currency,
          processor_amount, ledger_amount)
        VALUES (${newId('reci')}, ${report}, ${run.tenant.id}, false, ${status}, 'capture', ${`sim_beta_${status}`},
          'usd', ${processorAmount}, ${ledgerAmount})`;
    const listed = await ok(
      await call(run.t.app, PLATFORM_KEY, 'GET', '/v1/platform/reconciliation_discrepancies?limit=100'),
    );
    expect(listed.data).toHaveLength(2);

    const view = await openDashboard(run, operator, '/operator/reconciliation');
    const { page } = view;
    await page.getByRole('heading', { name: 'Reconciliation', level: 1 }).waitFor();
    await expect.poll(() => page.getByTestId('row-count').textContent()).toBe('2 rows loaded');
    const rows = page.locator('tbody tr[data-row-id]');
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-row-id')))).toEqual(
      listed.data.map((d: { id: string }) => d.id),
    );
    expect(await rows.first().getByRole('cell').allTextContents()).toEqual([
      `Dashboard tenant (${run.tenant.id})`,
      '2026-11-25',
      'sim_beta',
      'Amounts differ',
      'sim_beta_amount_mismatch',
      '$19.99',
      '$20.00',
      '-$0.01',
    ]);
    await page.getByLabel('Kind').selectOption('missing_in_ledger');
    await expect.poll(() => page.getByTestId('row-count').textContent()).toBe('1 row loaded');
    await page.getByLabel('Mode').selectOption('live');
    await page.getByText('No discrepancy: every reconciled line matched.').waitFor();
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
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
      ['GET', '/v1/tenants', undefined],
      ['POST', `/v1/tenants/${run.tenant.id}/suspend`, { reason: 'Not mine to decide' }],
      ['GET', '/v1/platform/reconciliation_discrepancies', undefined],
    ] as const) {
      const refused = await asMember(run.t.app, admin, method, url, body);
      expect(refused.statusCode, `${method} ${url}`).toBe(403);
    }
  });
});
