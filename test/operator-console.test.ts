import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  createTenant,
  expectError,
  ok,
  payByCard,
  PLATFORM_KEY,
  TestClock,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { newId } from '../src/lib/ids.js';
import { waitFor } from './process.js';
import { asMember, newMember } from './team.js';

/*
 * The operator console's API: the list of tenants, suspension, and the cross-tenant reads of reconciliation
 * discrepancies and the review backlog. Two API processes share the database, with key caches living an hour, so a
 * refusal on B within seconds of a suspension made through A can only come from the notification.
 */
const LONG_CACHE = { API_KEY_CACHE_TTL_MS: String(60 * 60 * 1000) };
const clock = new TestClock();
let a: TestApp;
let b: TestApp;
/** Names in this file start with it, so the other files' tenants (same database) stay out of the lists. */
const run = `Opc ${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  [a, b] = await Promise.all([bootApp(LONG_CACHE, undefined, { clock }), bootApp(LONG_CACHE)]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

const list = async (query: string) => ok(await call(a.app, PLATFORM_KEY, 'GET', `/v1/tenants?${query}`));
const names = (page: { data: { name: string }[] }) => page.data.map((t) => t.name);

describe('GET /v1/tenants', () => {
  let tenants: TestTenant[];
  beforeAll(async () => {
    tenants = [];
    for (const n of [1, 2, 3]) tenants.push(await createTenant(a.app, `${run} list ${n}`));
  });

  it('pages newest first with starting_after and ending_before, and says whether more follow', async () => {
    const prefix = encodeURIComponent(`${run} list`);
    const all = await list(`name_prefix=${prefix}`);
    expect(all).toMatchObject({ object: 'list', url: '/v1/tenants', has_more: false });
    expect(names(all)).toEqual([`${run} list 3`, `${run} list 2`, `${run} list 1`]);
    expect(all.data[0]).toMatchObject({ object: 'tenant', status: 'active', suspended_at: null });
    expect(all.data[0].secret_keys).toBeUndefined();

    const first = await list(`name_prefix=${prefix}&limit=2`);
    expect(names(first)).toEqual([`${run} list 3`, `${run} list 2`]);
    expect(first.has_more).toBe(true);
    const second = await list(`name_prefix=${prefix}&limit=2&starting_after=${first.data[1].id}`);
    expect(names(second)).toEqual([`${run} list 1`]);
    expect(second.has_more).toBe(false);
    const back = await list(`name_prefix=${prefix}&limit=1&ending_before=${second.data[0].id}`);
    expect(names(back)).toEqual([`${run} list 2`]);
    expect(back.has_more).toBe(true);
    const backToStart = await list(`name_prefix=${prefix}&limit=5&ending_before=${tenants[1].id}`);
    expect(names(backToStart)).toEqual([`${run} list 3`]);
    expect(backToStart.has_more).toBe(false);
  });

  it('matches the name prefix ignoring case, and LIKE wildcards only literally', async () => {
    expect(names(await list(`name_prefix=${encodeURIComponent(`${run} LIST 2`.toLowerCase())}`))).toEqual([
      `${run} list 2`,
    ]);
    expect((await list(`name_prefix=${encodeURIComponent(`${run} %`)}`)).data).toEqual([]);
    expect((await list(`name_prefix=${encodeURIComponent(`${run}_list`)}`)).data).toEqual([]);
  });

  it('filters by status', async () => {
    const prefix = encodeURIComponent(`${run} list`);
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenants[0].id}/suspend`, { reason: 'Test' }));
    expect(names(await list(`name_prefix=${prefix}&status=suspended`))).toEqual([`${run} list 1`]);
    expect(names(await list(`name_prefix=${prefix}&status=active`))).toEqual([`${run} list 3`, `${run} list 2`]);
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenants[0].id}/reactivate`));
  });

  it('refuses bad input with 400 and our error, and tenant keys with 403', async () => {
    for (const [query, param] of [
      ['limit=0', 'limit'],
      ['limit=101', 'limit'],
      ['status=closed', 'status'],
      ['name_prefix=', 'name_prefix'],
      ['created[gte]=1', 'created[gte]'],
    ]) {
      const response = await call(a.app, PLATFORM_KEY, 'GET', `/v1/tenants?${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param });
    }
    expectError(await call(a.app, PLATFORM_KEY, 'GET', '/v1/tenants?starting_after=ten_nosuchtenant'), 400, {
      code: 'resource_missing',
    });
    expectError(
      await call(
        a.app,
        PLATFORM_KEY,
        'GET',
        `/v1/tenants?starting_after=${tenants[0].id}&ending_before=${tenants[1].id}`,
      ),
      400,
      { code: 'parameter_invalid' },
    );
    expectError(await call(a.app, tenants[0].testKey, 'GET', '/v1/tenants'), 403, { code: 'platform_key_required' });
  });
});

describe('suspension', () => {
  const status = async (app: TestApp, key: string, url = '/v1/payments') =>
    (await call(app.app, key, 'GET', url)).statusCode;

  it("refuses the tenant's keys with 403 account_suspended on every process; reactivation restores them", async () => {
    const tenant = await createTenant(a.app, `${run} suspended`);
    const other = await createTenant(a.app, `${run} bystander`);
    const payment = await payByCard(a.app, tenant.testKey, 1200);
    const publishable = (await ok(await call(a.app, tenant.testKey, 'GET', '/v1/publishable_key'))).key as string;
    // B has the keys cached for an hour.
    expect(await status(b, tenant.testKey)).toBe(200);
    expect(await status(b, tenant.liveKey)).toBe(200);

    const suspended = await ok(
      await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'Unpaid invoices' }),
    );
    expect(suspended).toMatchObject({ id: tenant.id, status: 'suspended', suspension_reason: 'Unpaid invoices' });
    expect(suspended.suspended_at).toBeGreaterThan(0);

    const create = await call(a.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 500,
      currency: 'usd',
      payment_method: 'pm_card_visa',
    });
    expectError(create, 403, { code: 'account_suspended' });
    expect(create.json().error).toMatchObject({ type: 'permission_error', param: null });
    expect(create.json().error.message).toContain('Unpaid invoices');
    expectError(await call(a.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`), 403, {
      code: 'account_suspended',
    });
    expectError(await call(a.app, publishable, 'GET', '/v1/payments'), 403, { code: 'account_suspended' });
    await waitFor(async () => (await status(b, tenant.testKey)) === 403, 15_000, 'B to refuse the suspended key');
    expect(await status(b, tenant.liveKey, `/v1/payments/${payment.id}`)).toBe(403);
    expect(await status(b, other.testKey)).toBe(200);
    // The operator still reads it, and suspending again changes nothing.
    const again = await ok(
      await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'Other words' }),
    );
    expect(again).toMatchObject({ suspension_reason: 'Unpaid invoices', suspended_at: suspended.suspended_at });

    const reactivated = await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/reactivate`));
    expect(reactivated).toMatchObject({ status: 'active', suspended_at: null, suspension_reason: null });
    expect(await status(a, tenant.testKey, `/v1/payments/${payment.id}`)).toBe(200);
    await waitFor(async () => (await status(b, tenant.testKey)) === 200, 15_000, 'B to accept the key again');

    const audit = await ok(await call(a.app, tenant.liveKey, 'GET', '/v1/audit_logs?limit=20'));
    const actions = audit.data.map((entry: { action: string }) => entry.action);
    expect(actions.filter((action: string) => action === 'tenant.suspended')).toHaveLength(1);
    expect(actions).toContain('tenant.reactivated');
  });

  it("refuses a suspended tenant's dashboard sessions with the same 403, but lets them sign out", async () => {
    const tenant = await createTenant(a.app, `${run} session`);
    const member = await newMember(a.app, clock, tenant.liveKey, 'admin');
    expect((await asMember(a.app, member, 'GET', '/v1/payments')).statusCode).toBe(200);
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'Fraud review' }));
    expectError(await asMember(a.app, member, 'GET', '/v1/payments'), 403, { code: 'account_suspended' });
    expectError(await asMember(a.app, member, 'GET', '/v1/users/me'), 403, { code: 'account_suspended' });
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/reactivate`));
    expect((await asMember(a.app, member, 'GET', '/v1/payments')).statusCode).toBe(200);
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'Again' }));
    // The session still reads itself, with the CSRF token that signing out needs, and says the account is suspended.
    const session = await ok(await asMember(a.app, member, 'GET', '/v1/sessions/current'));
    expect(session).toMatchObject({ object: 'session', account_suspended: true, csrf_token: member.csrf });
    // Signing out stays CSRF-protected.
    expectError(await asMember(a.app, member, 'DELETE', '/v1/sessions/current', undefined, { csrf: false }), 403, {
      code: 'csrf_token_invalid',
    });
    const signedOut = await asMember(a.app, member, 'DELETE', '/v1/sessions/current');
    expect(signedOut.statusCode, signedOut.body).toBe(200);
    expect(signedOut.headers['set-cookie']).toContain('Max-Age=0');
    // Ended on the server: once the tenant is active again, the old cookie is no session at all.
    await ok(await call(a.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/reactivate`));
    expectError(await asMember(a.app, member, 'GET', '/v1/payments'), 401, { code: 'session_expired' });
    expectError(await asMember(a.app, member, 'GET', '/v1/sessions/current'), 401, { code: 'session_expired' });
  });

  it("an active tenant's session says so", async () => {
    const tenant = await createTenant(a.app, `${run} active session`);
    const member = await newMember(a.app, clock, tenant.liveKey, 'view_only');
    expect(await ok(await asMember(a.app, member, 'GET', '/v1/sessions/current'))).toMatchObject({
      account_suspended: false,
    });
  });

  it('refuses bad input with 400, an unknown tenant with 404 and tenant keys with 403', async () => {
    const tenant = await createTenant(a.app, `${run} refusals`);
    const url = `/v1/tenants/${tenant.id}/suspend`;
    const missing = await call(a.app, PLATFORM_KEY, 'POST', url, {});
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.param).toBe('reason');
    expect((await call(a.app, PLATFORM_KEY, 'POST', url, { reason: '' })).statusCode).toBe(400);
    expect((await call(a.app, PLATFORM_KEY, 'POST', url, { reason: 'x'.repeat(501) })).statusCode).toBe(400);
    expect((await call(a.app, PLATFORM_KEY, 'POST', url, { reason: 'ok', extra: 1 })).statusCode).toBe(400);
    expectError(await call(a.app, PLATFORM_KEY, 'POST', '/v1/tenants/ten_nosuchtenant/suspend', { reason: 'x' }), 404, {
      code: 'resource_missing',
    });
    expectError(await call(a.app, PLATFORM_KEY, 'POST', '/v1/tenants/ten_nosuchtenant/reactivate'), 404, {
      code: 'resource_missing',
    });
    expectError(await call(a.app, tenant.testKey, 'POST', url, { reason: 'x' }), 403, {
      code: 'platform_key_required',
    });
    expectError(await call(a.app, tenant.testKey, 'POST', `/v1/tenants/${tenant.id}/reactivate`), 403, {
      code: 'platform_key_required',
    });
    expect((await ok(await call(a.app, PLATFORM_KEY, 'GET', `/v1/tenants/${tenant.id}`))).status).toBe('active');
  });
});

/** A reconciliation report of `tenant` with one item of each status, written as the reconciliation job would. */
async function reconciled(tenant: TestTenant, day: string) {
  const report = newId('recon');
  await a.admin`
    INSERT INTO reconciliation_reports (id, tenant_id, livemode, processor, report_date, currency, processor_count,
      processor_amount, ledger_count, ledger_amount, matched_count, matched_amount, missing_in_ledger_count,
      missing_in_ledger_amount, missing_in_report_count, missing_in_report_amount, amount_mismatch_count,
      amount_mismatch_amount)
    VALUES (${report}, ${tenant.id}, false, 'sim_alpha', ${day}::date, 'usd', 3, 3999, 3, 3100, 1, 1000, 1, 999, 1,
      1000, 1, 100)`;
  const items = [
    ['matched', 1000, 1000],
    ['missing_in_ledger', 999, null],
    ['missing_in_report', null, 1000],
    ['amount_mismatch', 2000, 1900],
  ] as const;
  const ids: Record<string, string> = {};
  for (const [status, processorAmount, ledgerAmount] of items) {
    const id = newId('reci');
    ids[status] = id;
    await a.admin`
      INSERT INTO reconciliation_items (id, report_id, tenant_id, livemode, status, type, reference, currency,
        processor_amount, ledger_amount)
      VALUES (${id}, ${report}, ${tenant.id}, false, ${status}, 'capture', ${`ref_${status}`}, 'usd',
        ${processorAmount}, ${ledgerAmount})`;
  }
  return { report, ids };
}

describe('GET /v1/platform/reconciliation_discrepancies', () => {
  it("lists every tenant's unmatched items with its name, paged, and refuses tenants", async () => {
    const first = await createTenant(a.app, `${run} recon one`);
    const second = await createTenant(a.app, `${run} recon two`);
    const one = await reconciled(first, '2026-11-20');
    await reconciled(second, '2026-11-21');
    const url = '/v1/platform/reconciliation_discrepancies';

    const mine = await ok(await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}`));
    expect(mine).toMatchObject({ object: 'list', url, has_more: false });
    expect(mine.data.map((d: { kind: string }) => d.kind)).toEqual([
      'amount_mismatch',
      'missing_in_report',
      'missing_in_ledger',
    ]);
    expect(mine.data[0]).toEqual({
      id: one.ids.amount_mismatch,
      object: 'reconciliation_discrepancy',
      tenant: first.id,
      tenant_name: `${run} recon one`,
      report: one.report,
      processor: 'sim_alpha',
      report_date: Date.UTC(2026, 10, 20) / 1000,
      kind: 'amount_mismatch',
      type: 'capture',
      reference: 'ref_amount_mismatch',
      source: null,
      currency: 'usd',
      processor_amount: 2000,
      ledger_amount: 1900,
      difference: 100,
      created: expect.any(Number),
      livemode: false,
    });
    expect(mine.data.find((d: { kind: string }) => d.kind === 'missing_in_report').difference).toBe(-1000);

    // Across tenants: both appear, newest first.
    const all = await ok(await call(a.app, PLATFORM_KEY, 'GET', `${url}?limit=100`));
    const ours = all.data.filter((d: { tenant: string }) => d.tenant === first.id || d.tenant === second.id);
    expect(ours.map((d: { tenant_name: string }) => d.tenant_name)).toEqual([
      ...Array(3).fill(`${run} recon two`),
      ...Array(3).fill(`${run} recon one`),
    ]);

    const page1 = await ok(await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}&limit=2`));
    expect(page1.has_more).toBe(true);
    const page2 = await ok(
      await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}&limit=2&starting_after=${page1.data[1].id}`),
    );
    expect(page2.data.map((d: { id: string }) => d.id)).toEqual([one.ids.missing_in_ledger]);
    expect(page2.has_more).toBe(false);
    const back = await ok(
      await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}&limit=1&ending_before=${page2.data[0].id}`),
    );
    expect(back.data.map((d: { id: string }) => d.id)).toEqual([one.ids.missing_in_report]);
    expect(back.has_more).toBe(true);
    const kind = await ok(await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}&kind=missing_in_ledger`));
    expect(kind.data.map((d: { id: string }) => d.id)).toEqual([one.ids.missing_in_ledger]);
    expect((await ok(await call(a.app, PLATFORM_KEY, 'GET', `${url}?tenant=${first.id}&livemode=true`))).data).toEqual(
      [],
    );

    for (const query of ['limit=0', 'kind=matched', 'livemode=maybe', 'tenant=' + 'x'.repeat(65), 'status=open']) {
      const response = await call(a.app, PLATFORM_KEY, 'GET', `${url}?${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.type).toBe('invalid_request_error');
    }
    // A matched item is no cursor: it is not in the list.
    expectError(await call(a.app, PLATFORM_KEY, 'GET', `${url}?starting_after=${one.ids.matched}`), 400, {
      code: 'resource_missing',
    });
    expectError(await call(a.app, first.testKey, 'GET', url), 403, { code: 'platform_key_required' });
  });
});

describe('GET /v1/analytics/platform/review_backlog', () => {
  it('counts open reviews per tenant with the oldest one’s age, longest-waiting first', async () => {
    const tenant = await createTenant(a.app, `${run} reviews`);
    const payments = [await payByCard(a.app, tenant.testKey, 1000), await payByCard(a.app, tenant.testKey, 2000)];
    const opened = new Date(Date.UTC(2020, 0, 1));
    for (const [i, payment] of payments.entries())
      await a.admin`
        INSERT INTO fraud_reviews (id, tenant_id, livemode, payment_id, status, opened_reason, created_at)
        VALUES (${newId('frv')}, ${tenant.id}, false, ${payment.id}, 'open', 'rule',
          ${new Date(opened.getTime() + i * 60_000)})`;
    const backlog = await ok(
      await call(a.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/review_backlog?livemode=false'),
    );
    const entry = backlog.tenants.find((t: { tenant: string }) => t.tenant === tenant.id);
    expect(entry).toEqual({
      tenant: tenant.id,
      tenant_name: `${run} reviews`,
      open_reviews: 2,
      oldest_opened: opened.getTime() / 1000,
    });
    const oldest = backlog.tenants.map((t: { oldest_opened: number }) => t.oldest_opened);
    expect(oldest).toEqual([...oldest].sort((x, y) => x - y));
    expect(backlog.open_reviews).toBeGreaterThanOrEqual(2);
    const live = await ok(
      await call(a.app, PLATFORM_KEY, 'GET', '/v1/analytics/platform/review_backlog?livemode=true'),
    );
    expect(live.tenants.find((t: { tenant: string }) => t.tenant === tenant.id)).toBeUndefined();
    expectError(await call(a.app, tenant.testKey, 'GET', '/v1/analytics/platform/review_backlog'), 403, {
      code: 'platform_key_required',
    });
  });
});
