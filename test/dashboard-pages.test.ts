import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { WebhookDispatcher } from '../src/workers/webhook-delivery.js';
import { readFile } from 'node:fs/promises';
import { call, createTenant, ok, payByCard, PLATFORM_KEY, TEST_CARDS, verifiedBankAccount } from './helpers.js';
import { outboxToken } from './team.js';
import { waitFor } from './process.js';
import { BROWSER_STEP_MS, BROWSER_TEST_MS } from './services.js';
import { startReceiver } from './webhook-receiver.js';
import { dashboardRunOfFile, expectAccessible, expectNoConsoleErrors, memberOf, openDashboard } from './dashboard.js';
import type { Member } from './team.js';

// The tenant pages of issue 13 beyond Home, Payments and Customers, driven in Chromium against the real platform. The
// webhook dispatcher runs here and acts on every tenant, so the file has a database of its own.
const run = dashboardRunOfFile(
  { WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8', WEBHOOK_TRANSPORT: 'postgres', WEBHOOK_RETRY_SCHEDULE: '0,0.2' },
  'dashboard_pages',
);
let dispatcher: WebhookDispatcher;
let admin: Member;
const receivers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  dispatcher = new WebhookDispatcher({ ...run.t.platform, log: run.t.app.log }, { idleWaitMs: 20 });
  dispatcher.start();
  admin = await memberOf(run, 'admin');
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await dispatcher?.stop();
});

const api = (method: string, url: string, body?: unknown, key = run.tenant.testKey) =>
  call(run.t.app, key, method, url, body);

/** The dashboard at `path`; a locator that never appears fails in 15 s, naming itself, before the test's timeout. */
async function open(member: Pick<Member, 'cookie'>, path: string, viewport?: { width: number; height: number }) {
  const view = await openDashboard(run, member, path, viewport);
  view.page.setDefaultTimeout(15_000);
  return view;
}

/** Waits for `expected`; fails at once, with the API's words and request id, if a refusal shows instead. */
async function expectNoApiError(page: Page, expected: Locator) {
  const refusal = page.getByTestId('api-error');
  await expected.or(refusal).first().waitFor();
  expect(await refusal.count(), (await refusal.allTextContents()).join('\n')).toBe(0);
}

/** Presses Tab until `target` has the focus (a keyboard reaches it), failing after `max` presses. */
async function tabTo(page: Page, target: Locator, max = 100) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((element) => element === document.activeElement)) return;
  }
  throw new Error(`Tab never reached ${String(target)}`);
}

/** The dialog a ConfirmAction opened, confirmed with its button. */
async function confirm(page: Page, button: string) {
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: button }).click();
  await dialog.waitFor({ state: 'detached' });
}

describe('Fraud', () => {
  it('the rules editor refuses a bad expression with its position as it is typed, and saves a good one', async () => {
    const view = await open(admin, '/fraud?tab=rules');
    const { page } = view;
    await page.getByRole('button', { name: 'New rule' }).click();
    await page.getByLabel('Name').fill('Large orders');
    const expression = page.getByLabel('Expression (CEL)');
    await expression.fill('amount > 100 &&');
    const error = page.getByText(/at position \d+: line 1, column \d+/);
    await error.waitFor();
    expect(await error.textContent()).toMatch(/expression|syntax/i);
    await expectAccessible(page);
    // The check never saved anything.
    const before = await ok(await api('GET', '/v1/fraud/rules'));
    expect(before.data.some((r: { name: string }) => r.name === 'Large orders')).toBe(false);

    await expression.fill("amount > 100000 && currency == 'usd'");
    await page.getByText('The expression is valid.').waitFor();
    await page.getByRole('button', { name: 'Save rule' }).click();
    await page.getByRole('cell', { name: 'Large orders' }).waitFor();
    const after = await ok(await api('GET', '/v1/fraud/rules'));
    expect(after.data.find((r: { name: string }) => r.name === 'Large orders')).toMatchObject({
      expression: "amount > 100000 && currency == 'usd'",
      action: 'review',
    });
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('approves a review from the queue (the held payment is captured); an analyst sees no decision buttons', async () => {
    await ok(
      await api('POST', '/v1/fraud/rules', {
        name: 'Review 43.21',
        expression: 'amount == 4321',
        action: 'review',
        priority: 0,
      }),
    );
    const payment = await payByCard(run.t.app, run.tenant.testKey, 4321, { capture_method: 'manual' });
    expect(payment.status).toBe('requires_capture');
    const reviews = await ok(await api('GET', '/v1/reviews?status=open'));
    const review = reviews.data.find((r: { payment: string }) => r.payment === payment.id);
    expect(review).toBeDefined();

    const analyst = await memberOf(run, 'analyst');
    const readOnly = await open(analyst, '/fraud');
    await readOnly.page.locator(`tr[data-row-id="${review.id}"]`).waitFor();
    expect(await readOnly.page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    await expectAccessible(readOnly.page);
    await readOnly.context.close();

    const view = await open(admin, '/fraud');
    const row = view.page.locator(`tr[data-row-id="${review.id}"]`);
    await row.getByRole('button', { name: 'Approve' }).click();
    await confirm(view.page, 'Approve the payment');
    await row.waitFor({ state: 'detached' });
    expect(await ok(await api('GET', `/v1/reviews/${review.id}`))).toMatchObject({ status: 'approved' });
    expect(await ok(await api('GET', `/v1/payments/${payment.id}`))).toMatchObject({ status: 'succeeded' });
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('a review is approved with the keyboard alone', async () => {
    await ok(
      await api('POST', '/v1/fraud/rules', { name: 'Review 43.22', expression: 'amount == 4322', action: 'review' }),
    );
    const payment = await payByCard(run.t.app, run.tenant.testKey, 4322, { capture_method: 'manual' });
    const review = (await ok(await api('GET', '/v1/reviews?status=open'))).data.find(
      (r: { payment: string }) => r.payment === payment.id,
    );
    const view = await open(admin, '/fraud', { width: 390, height: 844 });
    const { page } = view;
    const row = page.locator(`tr[data-row-id="${review.id}"]`);
    await row.waitFor();
    const dialog = page.getByRole('dialog');
    // In one full run on a loaded machine the Enter was lost (no dialog within 15 s, nothing else failed): the
    // virtualised table can render again between the focus check and the key press. Tab to the button again then.
    for (let attempt = 1; ; attempt++) {
      await tabTo(page, row.getByRole('button', { name: 'Approve' }));
      await page.keyboard.press('Enter');
      try {
        await dialog.waitFor({ timeout: 5_000 });
        break;
      } catch (error) {
        if (attempt === 3) throw error;
      }
    }
    // The dialog holds the focus: Tab cycles inside it until its confirmation.
    await tabTo(page, dialog.getByRole('button', { name: 'Approve the payment' }), 10);
    await page.keyboard.press('Enter');
    await row.waitFor({ state: 'detached' });
    expect(await ok(await api('GET', `/v1/payments/${payment.id}`))).toMatchObject({ status: 'succeeded' });
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('runs a backtest and shows the lists with their items', async () => {
    const view = await open(admin, '/fraud?tab=backtest');
    const { page } = view;
    await page.getByLabel('Expression (CEL)').fill('amount == 4321');
    await page.getByLabel('From (UTC day)').fill(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
    await page.getByRole('button', { name: 'Run backtest' }).click();
    const results = page.getByRole('region', { name: 'Backtest results' });
    await results.waitFor();
    // The payment of the review test matched: one replayed payment at least, one match.
    const cells = await results.getByRole('cell').allTextContents();
    expect(Number(cells[0])).toBeGreaterThanOrEqual(1);
    expect(cells[1]).toBe('1');
    await expectAccessible(page);

    await page.getByRole('tab', { name: 'Lists' }).click();
    await page.getByRole('button', { name: 'Show items of blocked_emails' }).click();
    await page.getByLabel('Add a value (email)').fill('fraudster@example.com');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('cell', { name: 'fraudster@example.com' }).waitFor();
    expect(new URL(page.url()).searchParams.get('tab')).toBe('lists');
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Webhooks', () => {
  it('adds an endpoint, shows its log, redelivers one event and replays a range to a real receiver', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const view = await open(admin, '/webhooks');
    const { page } = view;
    await page.getByLabel('URL').fill(receiver.url);
    await page.getByLabel('Events (comma separated)').fill('payment.succeeded');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    expect(await page.getByTestId('secret-once').textContent()).toMatch(/whsec_/);
    const endpoints = await ok(await api('GET', '/v1/webhook_endpoints'));
    const endpoint = endpoints.data.find((e: { url: string }) => e.url === receiver.url);

    const payment = await payByCard(run.t.app, run.tenant.testKey, 2500);
    await waitFor(() => receiver.received.length >= 1, 20_000, 'the first delivery');
    const eventId = receiver.ids()[0];
    const event = await ok(await api('GET', `/v1/events/${eventId}`));
    expect(event.data.object.id).toBe(payment.id);

    await page.getByRole('button', { name: `Delivery log of ${receiver.url}` }).click();
    const log = page.getByRole('region', { name: `Delivery log of ${endpoint.id}` });
    await log.getByRole('button', { name: eventId }).waitFor();
    await expectAccessible(page);
    await log.getByRole('button', { name: 'Redeliver' }).click();
    await confirm(page, 'Redeliver the event');
    await waitFor(() => receiver.received.length >= 2, 20_000, 'the redelivery');
    expect(receiver.ids()[1]).toBe(eventId);

    await page.locator(`tr[data-row-id="${endpoint.id}"]`).getByRole('button', { name: 'Replay' }).click();
    const since = new Date(Date.now() - 3_600_000);
    const local = new Date(since.getTime() - since.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel('Since').fill(local);
    await confirm(page, 'Replay the events');
    await waitFor(() => receiver.received.length >= 3, 20_000, 'the replay');
    expect(receiver.ids()[2]).toBe(eventId);

    // The event's own view: every delivery of it.
    await log.getByRole('button', { name: eventId }).first().click();
    await page.getByRole('region', { name: `Deliveries of event ${eventId}` }).waitFor();
    expect(new URL(page.url()).searchParams.get('event')).toBe(eventId);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('sends a test event, rotates the secret and disables the endpoint', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const endpoint = await ok(await api('POST', '/v1/webhook_endpoints', { url: receiver.url, enabled_events: ['*'] }));
    const view = await open(admin, '/webhooks');
    const row = view.page.locator(`tr[data-row-id="${endpoint.id}"]`);
    await row.getByRole('button', { name: 'Send test event' }).click();
    await confirm(view.page, 'Send a test event');
    const test = await waitFor(
      () => receiver.received.find((r) => JSON.parse(r.body).type === 'webhook_endpoint.test'),
      20_000,
      'the test event',
    );
    expect(test.headers['webhook-signature']).toMatch(/^v1,/);
    await row.getByRole('button', { name: 'Rotate secret' }).click();
    await confirm(view.page, 'Rotate the secret');
    expect(await view.page.getByTestId('secret-once').textContent()).toMatch(/whsec_/);
    await row.getByRole('button', { name: 'Disable' }).click();
    await confirm(view.page, 'Disable the endpoint');
    await row.getByRole('button', { name: 'Enable' }).waitFor();
    expect(await ok(await api('GET', `/v1/webhook_endpoints/${endpoint.id}`))).toMatchObject({ status: 'disabled' });
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Developers', { timeout: BROWSER_TEST_MS }, () => {
  it('creates a restricted key that works, finds its request by id, and revokes it', async () => {
    const view = await open(admin, '/developers');
    const { page } = view;
    await page.getByLabel('Key name').fill('Reporting');
    await page.getByRole('combobox', { name: 'Scopes' }).click();
    await page.getByRole('option', { name: 'payments:read', exact: true }).click();
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Create restricted key' }).click();
    await expectNoApiError(page, page.getByTestId('secret-once'));
    const secret = /rk_test_\S+/.exec((await page.getByTestId('secret-once').textContent())!)![0];
    const read = await api('GET', '/v1/payments?limit=1', undefined, secret);
    expect(read.statusCode).toBe(200);
    expect((await api('POST', '/v1/customers', {}, secret)).statusCode).toBe(403);
    const requestId = String(read.headers['request-id']);

    const keys = await ok(await api('GET', '/v1/api_keys'));
    const key = keys.data.find((k: { name: string | null }) => k.name === 'Reporting');
    expect(key.scopes).toEqual(['payments:read']);
    // The request log is written within about a second: reload until it shows.
    await waitFor(async () => {
      await page.reload();
      await page.getByRole('heading', { name: 'Recent API requests' }).waitFor();
      return (await page.getByText(requestId).count()) > 0;
    }, BROWSER_STEP_MS);
    await expectAccessible(page);

    const row = page.locator(`tr[data-row-id="${key.id}"]`);
    await row.getByRole('button', { name: 'Revoke' }).click();
    await confirm(page, 'Revoke the key');
    await row.getByText('revoked').waitFor();
    expect((await api('GET', '/v1/payments?limit=1', undefined, secret)).statusCode).toBe(401);
    expectNoConsoleErrors(view);
    await view.context.close();
  });

  it('rolls a key with an expiry for the old one', async () => {
    const created = await ok(await api('POST', '/v1/api_keys', { name: 'Rolled', scopes: ['events:read'] }));
    const view = await open(admin, '/developers');
    const row = view.page.locator(`tr[data-row-id="${created.id}"]`);
    await row.getByRole('button', { name: 'Roll' }).click();
    await view.page.getByRole('dialog').getByLabel('Old key stops').click();
    await view.page.getByRole('option', { name: 'in 24 hours' }).click();
    await confirm(view.page, 'Roll the key');
    expect(await view.page.getByTestId('secret-once').textContent()).toMatch(/rk_test_/);
    await row.getByText(/^expires /).waitFor();
    const old = (await ok(await api('GET', '/v1/api_keys'))).data.find((k: { id: string }) => k.id === created.id);
    expect(old.expires_at - Math.floor(Date.now() / 1000)).toBeGreaterThan(86_000);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Team', () => {
  it('sends an invitation (the mail goes out) and resends it', async () => {
    const view = await open(admin, '/team');
    const { page } = view;
    const email = `invitee.${Date.now()}@example.com`;
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Send invitation' }).click();
    await page.getByText(`Invitation sent to ${email}`).waitFor();
    const first = await outboxToken(run.t.app, email);
    expect(first).toBeTruthy();
    const users = await ok(await api('GET', '/v1/users', undefined, run.tenant.liveKey));
    const invited = users.data.find((u: { email: string }) => u.email === email);
    expect(invited).toMatchObject({ status: 'invited', role: 'analyst' });
    const row = page.locator(`tr[data-row-id="${invited.id}"]`);
    await row.waitFor();
    await expectAccessible(page);
    await row.getByRole('button', { name: 'Resend' }).click();
    await confirm(page, 'Resend the invitation');
    await waitFor(async () => (await outboxToken(run.t.app, email)) !== first, 20_000, 'a new invitation link');
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Balance', () => {
  it('shows the funds, a settlement with its transactions, the payout that carried it, and bank accounts', async () => {
    const account = await verifiedBankAccount(run.t.app, run.tenant.testKey);
    const schedule = { type: 'daily', delay_days: 2, automatic_payouts: true };
    await ok(await api('POST', `/v1/tenants/${run.tenant.id}`, { settlement_schedule: schedule }, PLATFORM_KEY));
    const payment = await payByCard(run.t.app, run.tenant.testKey, 10_000);
    const charge = await ok(await api('GET', `/v1/balance_transactions?source=${payment.id}`));
    await run.t.platform.settlements.run(new Date(charge.data[0].available_on * 1000));
    const settled = await ok(await api('GET', `/v1/balance_transactions/${charge.data[0].id}`));
    expect(settled.settlement).toMatch(/^st_/);
    const settlement = await ok(await api('GET', `/v1/settlements/${settled.settlement}`));
    expect(settlement.payout).toMatch(/^po_/);
    const balance = await ok(await api('GET', '/v1/balance'));

    const view = await open(admin, '/balance');
    const { page } = view;
    const usd = (kind: 'available' | 'pending') =>
      balance[kind].find((a: { currency: string }) => a.currency === 'usd')?.amount ?? 0;
    const money = (minor: number) =>
      new Intl.NumberFormat('en', { style: 'currency', currency: 'USD' }).format(minor / 100);
    await page
      .getByTestId('balance-Available')
      .getByText(money(usd('available')))
      .waitFor();
    await page
      .getByTestId('balance-Pending')
      .getByText(money(usd('pending')))
      .waitFor();
    await page.getByRole('button', { name: `Transactions of settlement ${settlement.id}` }).click();
    const settledTable = page.getByRole('table', { name: `What settlement ${settlement.id} settled` });
    await settledTable.getByRole('link', { name: payment.id }).waitFor();
    expect(new URL(page.url()).searchParams.get('settlement')).toBe(settlement.id);
    await page.getByRole('button', { name: `What payout ${settlement.payout} carried` }).click();
    const carried = page.getByRole('table', { name: `Settlements payout ${settlement.payout} carried` });
    await carried.getByRole('cell', { name: settlement.id }).waitFor();
    await page.getByRole('table', { name: `Balance transactions of payout ${settlement.payout}` }).waitFor();
    await page.locator(`tr[data-row-id="${account.id}"]`).getByText('verified').waitFor();
    await expectAccessible(page);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Disputes', () => {
  it('shows the evidence deadline and submits evidence; a view-only member gets no form', async () => {
    const payment = await payByCard(run.t.app, run.tenant.testKey, 7_700, {}, TEST_CARDS.disputed);
    await run.t.platform.disputes.intake();
    const dispute = (await ok(await api('GET', `/v1/disputes?payment=${payment.id}`))).data[0];
    expect(dispute.status).toBe('needs_response');

    const viewer = await open(await memberOf(run, 'view_only'), `/disputes?dispute=${dispute.id}`);
    await viewer.page.getByTestId('evidence-deadline').waitFor();
    expect(await viewer.page.getByRole('button', { name: 'Submit evidence' }).count()).toBe(0);
    await viewer.context.close();

    const view = await open(admin, '/disputes');
    const { page } = view;
    await page.getByRole('button', { name: dispute.id }).click();
    const deadline = page.getByTestId('evidence-deadline');
    expect(await deadline.textContent()).toMatch(/Evidence due by .*6 days left/);
    await expectAccessible(page);
    await page.getByLabel('Other evidence').fill('winning_evidence: delivered and signed for');
    await page.getByRole('button', { name: 'Submit evidence' }).click();
    // Submitted, the dispute is under review: the form gives way to the evidence on file.
    await expectNoApiError(page, deadline.getByText('Evidence submitted; the bank is reviewing it.'));
    await page.getByRole('cell', { name: 'winning_evidence: delivered and signed for' }).waitFor();
    expect(await ok(await api('GET', `/v1/disputes/${dispute.id}`))).toMatchObject({
      status: 'under_review',
      evidence: { uncategorized_text: 'winning_evidence: delivered and signed for' },
    });
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Reports', () => {
  it('runs a report, downloads the file the API serves, and schedules one', async () => {
    const view = await open(admin, '/reports');
    const { page } = view;
    await page.getByRole('button', { name: 'Run report' }).click();
    await page.getByText('Report queued').waitFor();
    const report = (await ok(await api('GET', '/v1/reports'))).data[0];
    expect(report).toMatchObject({ type: 'transaction_summary', status: 'pending' });
    await run.t.platform.reports.runPending(new Date());
    const row = page.locator(`tr[data-row-id="${report.id}"]`);
    const downloading = page.waitForEvent('download');
    await row.getByRole('button', { name: /Download/ }).click();
    const download = await downloading;
    const file = await readFile((await download.path())!, 'utf8');
    const served = await api('GET', `/v1/reports/${report.id}/file`);
    expect(file).toBe(served.body);
    expect(file).toMatch(/^section,dimension,currency,count,amount,rate_bp/);
    await expectAccessible(page);

    await page.getByRole('combobox', { name: 'Repeat' }).click();
    await page.getByRole('option', { name: 'Weekly (the 7 days before)' }).click();
    await page.getByRole('button', { name: 'Schedule report' }).click();
    await page.getByRole('cell', { name: 'weekly' }).waitFor();
    expect((await ok(await api('GET', '/v1/report_schedules'))).data[0]).toMatchObject({
      type: 'transaction_summary',
      interval: 'weekly',
    });
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('Audit log', () => {
  it('filters the trail by action and object, in the URL', async () => {
    const key = await ok(await api('POST', '/v1/api_keys', { name: 'Audited', scopes: ['events:read'] }));
    const view = await open(admin, '/audit-log?action=api_key.*');
    const { page } = view;
    await page.getByRole('cell', { name: `api_key ${key.id}` }).waitFor();
    await expectAccessible(page);
    await page.getByLabel('Object id').fill(key.id);
    await waitFor(async () => (await page.getByTestId('row-count').textContent()) === '1 row loaded');
    expect(new URL(page.url()).searchParams.get('object')).toBe(key.id);
    await page.getByRole('cell', { name: 'api_key.created' }).waitFor();
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('a refusal that happens anyway', () => {
  it('is shown in words with its request id: an admin changing a member who became owner meanwhile', async () => {
    const member = await memberOf(run, 'developer');
    const view = await open(admin, '/team');
    const { page } = view;
    const row = page.locator(`tr[data-row-id="${member.id}"]`);
    await row.getByRole('button', { name: 'Change role' }).waitFor();
    // An owner's change, made elsewhere after the page was drawn: the page still offers the action.
    await ok(await api('PATCH', `/v1/users/${member.id}`, { role: 'owner' }, run.tenant.liveKey));
    await row.getByRole('button', { name: 'Change role' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Save the role' }).click();
    const alert = page.getByRole('dialog').getByTestId('api-error');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/HTTP 403 · role_beyond_caller/);
    expect(await alert.getByTestId('request-id').textContent()).toMatch(/^req_/);
    await expectAccessible(page);
    await page.keyboard.press('Escape');
    // Drawn again, an owner's row offers an admin nothing.
    await page.reload();
    await row.waitFor();
    expect(await row.getByRole('button').count()).toBe(0);
    expectNoConsoleErrors(view);
    await view.context.close();
  });
});

describe('lists longer than a page', () => {
  it('API keys and fraud list items go past the first 100 with "Load more"', async () => {
    const tenant = await createTenant(run.t.app, 'Long lists');
    const key = tenant.testKey;
    await Promise.all(
      Array.from({ length: 101 }, async (_, i) =>
        ok(await call(run.t.app, key, 'POST', '/v1/api_keys', { name: `key ${i}`, scopes: ['payments:read'] })),
      ),
    );
    let keys = 0;
    for (let cursor = ''; ;) {
      const page = await ok(
        await call(run.t.app, key, 'GET', `/v1/api_keys?limit=100${cursor && `&starting_after=${cursor}`}`),
      );
      keys += page.data.length;
      if (!page.has_more) break;
      cursor = page.data.at(-1).id;
    }
    const list = await ok(
      await call(run.t.app, key, 'POST', '/v1/fraud/lists', { name: 'long_list', item_type: 'email' }),
    );
    await Promise.all(
      Array.from({ length: 104 }, async (_, i) =>
        ok(await call(run.t.app, key, 'POST', `/v1/fraud/lists/${list.id}/items`, { value: `user${i}@example.com` })),
      ),
    );
    const admin = await memberOf(run, 'admin', tenant);

    const developers = await open(admin, '/developers');
    const keysSection = developers.page.getByRole('region', { name: 'API keys' });
    await keysSection.getByTestId('row-count').filter({ hasText: '100 rows loaded, more available' }).waitFor();
    await keysSection.getByRole('button', { name: 'Load more' }).click();
    await keysSection
      .getByTestId('row-count')
      .filter({ hasText: `${keys} rows loaded` })
      .waitFor();
    expect(await keysSection.getByRole('cell', { name: 'key 0', exact: true }).count()).toBe(1);
    expect(await keysSection.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    expectNoConsoleErrors(developers);
    await developers.context.close();

    const fraud = await open(admin, '/fraud?tab=lists');
    await fraud.page.getByRole('button', { name: 'Show items of long_list' }).click();
    const items = fraud.page.getByRole('region', { name: /^Items of long_list/ });
    await items.getByTestId('row-count').filter({ hasText: '100 rows loaded, more available' }).waitFor();
    await items.getByRole('button', { name: 'Load more' }).click();
    await items.getByTestId('row-count').filter({ hasText: '104 rows loaded' }).waitFor();
    const values = await items.getByRole('cell', { name: /^user\d+@example\.com$/ }).allTextContents();
    expect(new Set(values).size).toBe(104);
    await expectAccessible(fraud.page);
    expectNoConsoleErrors(fraud);
    await fraud.context.close();
  }, 120_000);
});

describe('every page', () => {
  const PAGES = ['/balance', '/disputes', '/fraud', '/webhooks', '/developers', '/reports', '/team', '/audit-log'];

  it.each(PAGES)('%s passes axe-core at 1280×800 and at 390 px, with no console error', async (path) => {
    // One load: the layout follows the viewport's width (CSS and the app's media queries), so the page is resized
    // rather than loaded again.
    const view = await open(admin, path);
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 844 },
    ]) {
      await view.page.setViewportSize(viewport);
      await view.page.getByRole('heading', { level: 1 }).waitFor();
      await waitFor(async () => (await view.page.getByRole('status').count()) === 0, 20_000, 'the page loaded');
      expect(await view.page.getByText('Not built yet').count()).toBe(0);
      await expectAccessible(view.page);
      expectNoConsoleErrors(view);
    }
    await view.context.close();
  });
});
