import { randomBytes } from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { CashManagementEndOfDayReport } from 'iso20022.js';
import { PDFParse } from 'pdf-parse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  newCustomer,
  TestClock,
  ok,
  PLATFORM_KEY,
  payByCard,
  TEST_CARDS,
  verifiedBankAccount,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { newMember } from '../../../test/team.js';
import { inScope } from '../../db/index.js';
import { idFloor } from '../../lib/ids.js';
import { REPORT_DEFINITIONS } from './definitions.js';
import { ReportService } from './service.js';
import { rotateCardKeys } from '../vault/rotate.js';
import { CardVault } from '../vault/vault.js';

let t: TestApp;

beforeAll(async () => {
  t = await bootApp();
});
afterAll(() => t.close());

const today = () => new Date().toISOString().slice(0, 10);

const pay = (tenant: TestTenant, amount: number, extra: Record<string, unknown> = {}, number = TEST_CARDS.visa) =>
  payByCard(t.app, tenant.testKey, amount, extra, number);

/** Queues a report, runs the worker pass and returns the finished report. */
async function produce(tenant: TestTenant, body: Record<string, unknown>) {
  const queued = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/reports', body));
  expect(queued.status).toBe('pending');
  await t.platform.reports.runPending();
  return ok(await call(t.app, tenant.testKey, 'GET', `/v1/reports/${queued.id}`));
}

async function download(tenant: TestTenant, id: string) {
  const response = await call(t.app, tenant.testKey, 'GET', `/v1/reports/${id}/file`);
  expect(response.statusCode, response.body).toBe(200);
  return response;
}

async function csvRows(tenant: TestTenant, body: Record<string, unknown>) {
  const report = await produce(tenant, { format: 'csv', ...body });
  expect(report.status, report.failure_message).toBe('succeeded');
  return parse((await download(tenant, report.id)).body, { columns: true }) as Record<string, string>[];
}

describe('large transactions and structuring', () => {
  let tenant: TestTenant;
  const ids: Record<string, string[]> = {};
  const customers: Record<string, string> = {};

  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Large and structuring');
    // Created in name order, so their ids (time-ordered) sort as the names do.
    for (const name of ['cus_big', 'cus_eur', 'cus_small', 'cus_struct', 'cus_tiny'])
      customers[name] = await newCustomer(t.app, tenant.testKey, { name });
    const payments: [string, number, string][] = [
      ['cus_big', 600_000, 'usd'],
      ['cus_big', 500_000, 'usd'],
      ['cus_small', 900_000, 'usd'],
      ['cus_eur', 950_000, 'eur'],
      ['cus_struct', 850_000, 'usd'],
      ['cus_struct', 900_000, 'usd'],
      ['cus_struct', 990_000, 'usd'],
      ['cus_tiny', 1_000, 'usd'],
    ];
    for (const [customer, amount, currency] of payments) {
      const payment = await pay(tenant, amount, { customer: customers[customer], currency });
      (ids[customer] ??= []).push(payment.id);
    }
  });

  it('fails, naming the currency, when a payment’s currency has no USD rate', async () => {
    const report = await produce(tenant, { type: 'large_transactions', parameters: { from: today(), to: today() } });
    expect(report.status).toBe('failed');
    expect(report.failure_message).toContain('No USD rate for eur');
    const file = await call(t.app, tenant.testKey, 'GET', `/v1/reports/${report.id}/file`);
    expect(file.statusCode).toBe(400);
    expect(file.json().error.code).toBe('report_not_ready');
  });

  it('lists each customer’s day reaching 10,000.00 USD equivalent (hand-computed)', async () => {
    const rows = await csvRows(tenant, {
      type: 'large_transactions',
      parameters: { from: today(), to: today(), rates: { eur: '1.10' } },
    });
    // cus_big 6,000 + 5,000; cus_eur 9,500 EUR × 1.10 = 10,450 USD; cus_struct 8,500 + 9,000 + 9,900.
    // cus_small (9,000) and cus_tiny stay under the threshold.
    expect(rows.map((r) => [r.subject, r.payment_count, r.usd_equivalent, r.amounts])).toEqual([
      [`customer:${customers.cus_big}`, '2', '1100000', 'usd:1100000'],
      [`customer:${customers.cus_eur}`, '1', '1045000', 'eur:950000'],
      [`customer:${customers.cus_struct}`, '3', '2740000', 'usd:2740000'],
    ]);
    expect(rows[0].payment_ids.split(' ')).toEqual(ids.cus_big);
    expect(rows.every((r) => r.day === today())).toBe(true);
  });

  it('a lower threshold and the JSON format', async () => {
    const report = await produce(tenant, {
      type: 'large_transactions',
      format: 'json',
      parameters: { from: today(), to: today(), rates: { eur: '1.10' }, threshold: 900_000 },
    });
    const file = JSON.parse((await download(tenant, report.id)).body);
    expect(file.rows.map((r: any) => [r.subject, r.usd_equivalent])).toEqual([
      [`customer:${customers.cus_big}`, 1_100_000],
      [`customer:${customers.cus_eur}`, 1_045_000],
      [`customer:${customers.cus_small}`, 900_000],
      [`customer:${customers.cus_struct}`, 2_740_000],
    ]);
    expect(report.row_count).toBe(4);
  });

  it('the PDF carries the same rows as text', async () => {
    const report = await produce(tenant, {
      type: 'large_transactions',
      format: 'pdf',
      parameters: { from: today(), to: today(), rates: { eur: '1.10' } },
    });
    const response = await download(tenant, report.id);
    expect(response.headers['content-type']).toBe('application/pdf');
    const parser = new PDFParse({ data: new Uint8Array(response.rawPayload) });
    const { text } = await parser.getText();
    await parser.destroy();
    expect(text).toContain('PayForward: Large transactions');
    expect(text).toContain(`subject: customer:${customers.cus_big}`);
    expect(text).toContain('usd_equivalent: 1100000');
    expect(text).toContain('usd_equivalent: 1045000');
    expect(text).toContain('3 rows.');
  });

  it('flags three payments within 24 hours at 80–100 % of the threshold, and opens one case for it', async () => {
    const body = {
      type: 'structuring_alerts',
      parameters: { from: today(), to: today(), rates: { eur: '1.10' } },
    };
    const rows = await csvRows(tenant, body);
    // cus_small has one such payment, cus_eur's is over the threshold, cus_big's are under 80 %.
    expect(rows.map((r) => [r.subject, r.payment_count, r.max_in_window, r.usd_equivalent])).toEqual([
      [`customer:${customers.cus_struct}`, '3', '3', '2740000'],
    ]);
    await csvRows(tenant, body);
    const cases = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/cases?kind=structuring'));
    expect(cases.data).toHaveLength(1);
    expect(cases.data[0]).toMatchObject({
      status: 'open',
      subject: { customer: customers.cus_struct },
      payments: ids.cus_struct,
      amount: 2_740_000,
      currency: 'usd',
    });
  });

  it('emits report.ready for each succeeded report', async () => {
    const [{ count }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM events WHERE tenant_id = ${tenant.id} AND type = 'report.ready'`;
    const [{ succeeded }] = await t.admin<{ succeeded: number }[]>`
      SELECT count(*)::int AS succeeded FROM reports WHERE tenant_id = ${tenant.id} AND status = 'succeeded'`;
    expect(count).toBe(succeeded);
    expect(count).toBeGreaterThan(3);
  });
});

describe('transaction summary', () => {
  it('volume by currency, brand and country, approval rate, refunds, disputes, fraud and fees (hand-computed)', async () => {
    const tenant = await createTenant(t.app, 'Summary');
    const first = await pay(tenant, 1_000);
    await pay(tenant, 2_000);
    await pay(tenant, 3_000, {}, '4000008260000000');
    const declined = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 4_000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.declined),
      confirm: true,
    });
    expect(declined.statusCode).toBe(402);
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: first.id, amount: 500 }));
    const rows = await csvRows(tenant, {
      type: 'transaction_summary',
      parameters: { month: today().slice(0, 7) },
    });
    // Fees (default plan, 290 bps + 30, 150 bps more for the GB card): 59 + 88 + 162 = 309.
    expect(rows.map((r) => [r.section, r.dimension, r.currency, r.count, r.amount, r.rate_bp])).toEqual([
      ['volume', 'all', 'usd', '3', '6000', ''],
      ['volume_by_card_brand', 'visa', 'usd', '3', '6000', ''],
      ['volume_by_card_country', 'GB', 'usd', '1', '3000', ''],
      ['volume_by_card_country', 'US', 'usd', '2', '3000', ''],
      ['approval_rate', 'all', '', '4', '', '7500'],
      ['refunds', 'all', 'usd', '1', '500', ''],
      ['dispute_ratio', 'all', '', '0', '', '0'],
      ['fraud_rate', 'all', '', '0', '', '0'],
      ['fees', 'all', 'usd', '3', '309', ''],
    ]);
  });
});

describe('settlement statement', () => {
  it('camt.053 parsed back by an independent reader matches /v1/settlements and the payout', async () => {
    const tenant = await createTenant(t.app, 'Statement');
    await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
        settlement_schedule: { type: 'daily', delay_days: 0 },
      }),
    );
    await pay(tenant, 10_000);
    await pay(tenant, 5_000);
    await t.platform.settlements.run();
    const settlements = (await ok(await call(t.app, tenant.testKey, 'GET', '/v1/settlements?currency=usd'))).data;
    expect(settlements.length).toBeGreaterThan(0);
    const settledNet = settlements.reduce((sum: number, s: any) => sum + s.net, 0);
    // 10,000 and 5,000 less 290 bps + 30 each: 9,680 + 4,825.
    expect(settledNet).toBe(14_505);
    await verifiedBankAccount(t.app, tenant.testKey);
    const payout = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: 4_000, currency: 'usd' }),
    );

    const parameters = { currency: 'usd', from: today(), to: today() };
    const report = await produce(tenant, { type: 'settlement_statement', format: 'camt.053', parameters });
    expect(report.status, report.failure_message).toBe('succeeded');
    const xml = (await download(tenant, report.id)).body;
    expect(xml).toContain('urn:iso:std:iso:20022:tech:xsd:camt.053.001.08');
    const statement = CashManagementEndOfDayReport.fromXML(xml);
    expect(statement.statements).toHaveLength(1);
    const [stmt] = statement.statements;
    const balance = (type: string) => stmt.balances.find((b) => b.type === type)!;
    expect(Math.round(balance('OPBD').amount)).toBe(0);
    expect(Math.round(balance('CLBD').amount)).toBe(settledNet - 4_000);
    expect(balance('CLBD').creditDebitIndicator).toBe('credit');
    const credits = stmt.entries.filter((e) => e.creditDebitIndicator === 'credit');
    const debits = stmt.entries.filter((e) => e.creditDebitIndicator === 'debit');
    expect(credits.map((e) => e.referenceId).sort()).toEqual(settlements.map((s: any) => s.id).sort());
    expect(Math.round(credits.reduce((sum, e) => sum + e.amount, 0))).toBe(settledNet);
    expect(debits.map((e) => [e.referenceId, Math.round(e.amount)])).toEqual([[payout.id, 4_000]]);
    expect(stmt.numOfEntries).toBe(settlements.length + 1);

    const csv = await csvRows(tenant, { type: 'settlement_statement', parameters });
    expect(csv[0]).toMatchObject({ kind: 'opening_balance', balance: '0' });
    expect(csv.at(-1)).toMatchObject({ kind: 'closing_balance', balance: String(settledNet - 4_000) });
    expect(csv.filter((r) => r.kind === 'settlement').map((r) => Number(r.amount))).toEqual(
      settlements.map((s: any) => s.net).reverse(),
    );
    // The next day opens with everything that moved today (the running balance less nothing since), and moves nothing.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const next = await csvRows(tenant, {
      type: 'settlement_statement',
      parameters: { currency: 'usd', from: tomorrow, to: tomorrow },
    });
    expect(next.map((r) => [r.kind, r.balance])).toEqual([
      ['opening_balance', String(settledNet - 4_000)],
      ['closing_balance', String(settledNet - 4_000)],
    ]);
  });

  it('a day without movement has its opening and closing balance', async () => {
    const tenant = await createTenant(t.app, 'Quiet statement');
    const report = await produce(tenant, {
      type: 'settlement_statement',
      format: 'camt.053',
      parameters: { currency: 'eur', from: '2026-01-01', to: '2026-01-02' },
    });
    const statement = CashManagementEndOfDayReport.fromXML((await download(tenant, report.id)).body);
    expect(statement.statements.map((s) => [s.entries.length, s.balances.map((b) => [b.type, b.amount])])).toEqual([
      [
        0,
        [
          ['OPBD', 0],
          ['CLBD', 0],
        ],
      ],
      [
        0,
        [
          ['OPBD', 0],
          ['CLBD', 0],
        ],
      ],
    ]);
  });
});

describe('PCI access review', () => {
  it('every key with its scopes, age and last use, and the KEK with its records', async () => {
    const tenant = await createTenant(t.app, 'Access review');
    await pay(tenant, 1_000);
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['reports:read'], name: 'auditor' }),
    );
    await t.admin`UPDATE api_keys SET created_at = now() - interval '100 days' WHERE id = ${restricted.id}`;
    const rows = await csvRows(tenant, { type: 'pci_access_review' });
    const keys = rows.filter((r) => r.principal === 'api_key');
    const publishable = keys.find((r) => r.access.startsWith('publishable key'))!;
    expect(publishable.name).toBe('Publishable key');
    expect(keys.map((r) => r.id).sort()).toEqual([tenant.testKeyId, restricted.id, publishable.id].sort());
    const secret = keys.find((r) => r.id === tenant.testKeyId)!;
    expect(secret.access).toBe('secret key: all scopes');
    expect(secret.last_used).not.toBe('');
    expect(secret.findings).toBe('');
    const old = keys.find((r) => r.id === restricted.id)!;
    expect(old).toMatchObject({ name: 'auditor', access: 'reports:read', age_days: '100', last_used: '' });
    expect(old.findings.split(' ')).toEqual(['older_than_90_days', 'unused_90_days']);
    // Public by design: an old publishable key is no finding.
    await t.admin`UPDATE api_keys SET created_at = now() - interval '100 days' WHERE id = ${publishable.id}`;
    const again = await csvRows(tenant, { type: 'pci_access_review' });
    expect(again.find((r) => r.id === publishable.id)!.findings).toBe('');
    const keks = rows.filter((r) => r.principal === 'kek');
    expect(keks).toHaveLength(1);
    expect(keks[0].id).toMatch(/^kek_/);
    expect(keks[0].access).toMatch(/^active since /);
    expect(keks[0].records).toBe('1');
  });

  it("reports a KEK's age from the generation date its VAULT_KEK entry carries, and its last rotation by vault:rotate", async () => {
    const [oldKek, newKek] = [randomBytes(32), randomBytes(32)];
    const kekReview = async (vaultKek: string) => {
      const app = await bootApp({ VAULT_KEK: vaultKek });
      try {
        const tenant = await createTenant(app.app, 'KEK review');
        await ok(await call(app.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa)));
        const queued = await ok(
          await call(app.app, tenant.testKey, 'POST', '/v1/reports', { type: 'pci_access_review', format: 'csv' }),
        );
        await app.platform.reports.runPending();
        const file = await call(app.app, tenant.testKey, 'GET', `/v1/reports/${queued.id}/file`);
        expect(file.statusCode, file.body).toBe(200);
        const rows = parse(file.body, { columns: true }) as Record<string, string>[];
        return rows.filter((r) => r.principal === 'kek');
      } finally {
        await app.close();
      }
    };
    const generated = '2025-06-01';
    const [before] = await kekReview(`${oldKek.toString('base64')}@${generated}`);
    const ageDays = Math.floor((Date.now() - Date.parse(`${generated}T00:00:00Z`)) / 86_400_000);
    expect(before).toMatchObject({
      id: CardVault.kekId(oldKek),
      created: `${generated}T00:00:00.000Z`,
      age_days: String(ageDays),
      findings: 'not_rotated_in_365_days',
    });
    expect(before.access).not.toContain('re-wrapped');

    // A new KEK listed first, then vault:rotate; the old one's date is kept although its entry no longer has it.
    const rotating = CardVault.fromEntries(
      [`${newKek.toString('base64')}@2026-11-01T08:30:00Z`, oldKek.toString('base64')],
      randomBytes(32),
    );
    await rotateCardKeys(t.admin, rotating);
    const [rotatedAt] = await t.admin<{ rotated_at: Date }[]>`
      SELECT rotated_at FROM vault_keks WHERE id = ${rotating.activeKekId}`;
    const after = await kekReview(`${newKek.toString('base64')}@2026-11-01T08:30:00Z,${oldKek.toString('base64')}`);
    expect(after.map((k) => [k.id, k.created, k.findings])).toEqual([
      [CardVault.kekId(oldKek), `${generated}T00:00:00.000Z`, ''],
      [rotating.activeKekId, '2026-11-01T08:30:00.000Z', ''],
    ]);
    expect(after[1].access).toContain(`records last re-wrapped onto it ${rotatedAt.rotated_at.toISOString()}`);
    expect(after[0].access).toBe('decrypt only');
    // A KEK whose entry never carried a date says so: its age is only when it was first seen.
    const [undated] = await kekReview(randomBytes(32).toString('base64'));
    expect(undated.findings).toBe('generation_date_unknown');
  }, 120_000);

  it('every active team user with role, MFA and last sign-in; a user idle over 90 days is flagged', async () => {
    const tenant = await createTenant(t.app, 'Access review team');
    const member = await newMember(t.app, new TestClock(), tenant.liveKey, 'analyst');
    const idle = await newMember(t.app, new TestClock(), tenant.liveKey, 'support');
    await t.admin`UPDATE users SET created_at = now() - interval '120 days', last_login_at = now() - interval '100 days'
      WHERE id = ${idle.id}`;
    const users = (await csvRows(tenant, { type: 'pci_access_review' })).filter((r) => r.principal === 'user');
    const owner = users.find((r) => r.id === member.id)!;
    expect(owner).toMatchObject({ name: member.email, access: 'analyst', mfa: 'enrolled', findings: '' });
    expect(owner.last_used).not.toBe('');
    expect(users.find((r) => r.id === idle.id)).toMatchObject({
      access: 'support',
      mfa: 'enrolled',
      findings: 'inactive_over_90_days',
    });
  });
});

describe('reconciliation summary', () => {
  it('lists the period’s reports and their discrepancies', async () => {
    const tenant = await createTenant(t.app, 'Recon summary');
    await t.admin`
      INSERT INTO reconciliation_reports (id, tenant_id, livemode, processor, report_date, currency, processor_count,
        processor_amount, ledger_count, ledger_amount, matched_count, matched_amount, missing_in_ledger_count,
        missing_in_ledger_amount, missing_in_report_count, missing_in_report_amount, amount_mismatch_count,
        amount_mismatch_amount)
      VALUES ('recon_a', ${tenant.id}, false, 'sim_alpha', '2026-03-02', 'usd', 2, 3000, 2, 2500, 1, 1000, 0, 0, 0, 0,
        1, 500),
        ('recon_b', ${tenant.id}, false, 'sim_alpha', '2026-03-05', 'usd', 1, 100, 1, 100, 1, 100, 0, 0, 0, 0, 0, 0),
        ('recon_c', ${tenant.id}, false, 'sim_alpha', '2026-04-01', 'usd', 1, 100, 1, 100, 1, 100, 0, 0, 0, 0, 0, 0)`;
    await t.admin`
      INSERT INTO reconciliation_items (id, report_id, tenant_id, livemode, status, type, reference, currency,
        processor_amount, ledger_amount)
      VALUES ('reci_1', 'recon_a', ${tenant.id}, false, 'matched', 'capture', 'ref1', 'usd', 1000, 1000),
        ('reci_2', 'recon_a', ${tenant.id}, false, 'amount_mismatch', 'capture', 'ref2', 'usd', 2000, 1500)`;
    const rows = await csvRows(tenant, {
      type: 'reconciliation_summary',
      parameters: { from: '2026-03-01', to: '2026-03-31' },
    });
    expect(rows.map((r) => [r.row, r.report, r.status, r.discrepancy_count, r.reference, r.difference])).toEqual([
      ['report', 'recon_a', 'discrepancies', '1', '', '500'],
      ['discrepancy', 'recon_a', 'amount_mismatch', '', 'ref2', '500'],
      ['report', 'recon_b', 'balanced', '0', '', '0'],
    ]);
  });
});

describe('large reports stream', () => {
  it('reads through a cursor in batches and stores the file in chunks', async () => {
    const tenant = await createTenant(t.app, 'Streaming');
    const count = 2_500;
    const floor = idFloor('pay', new Date());
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, amount_received, customer)
      SELECT ${floor} || lpad(i::text, 8, '0'), ${tenant.id}, false, 2000000, 'usd', 'succeeded', 'automatic', 2000000,
        'cus_' || i
      FROM generate_series(1, ${count}) i`;
    const scope = { tenantId: tenant.id, livemode: false };
    const parameters = { from: today(), to: today() };

    const batches = await inScope(t.platform.sql, scope, async (tx) => {
      const sizes: number[] = [];
      const ctx = { tx, scope, parameters, now: new Date(), cursorRows: 100, keks: [] };
      for await (const batch of REPORT_DEFINITIONS.large_transactions.rows(ctx)) sizes.push(batch.length);
      return sizes;
    });
    expect(batches).toHaveLength(count / 100);
    expect(Math.max(...batches)).toBe(100);

    const service = new ReportService(
      t.platform.sql,
      t.platform.workerSql,
      { active: 'kek_x', all: ['kek_x'] },
      {
        cursorRows: 100,
        chunkBytes: 16 * 1024,
        staleAfterMs: 60_000,
      },
    );
    const queued = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/reports', { type: 'large_transactions', parameters }),
    );
    expect(await service.produce(scope, queued.id)).toBe(true);
    const report = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/reports/${queued.id}`));
    expect(report.row_count).toBe(count);
    const [{ chunks, largest }] = await t.admin<{ chunks: number; largest: number }[]>`
      SELECT count(*)::int AS chunks, max(octet_length(data))::int AS largest FROM report_chunks
      WHERE report_id = ${queued.id}`;
    expect(chunks).toBe(Math.ceil(report.size / (16 * 1024)));
    expect(chunks).toBeGreaterThan(5);
    expect(largest).toBe(16 * 1024);
    const rows = parse((await download(tenant, queued.id)).body, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(count);
    expect(new Set(rows.map((r) => r.customer)).size).toBe(count);
  });
});

describe('schedules', () => {
  it('queue a report for the period that just ended, once per run, until deleted', async () => {
    const tenant = await createTenant(t.app, 'Schedules');
    const schedule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/report_schedules', {
        type: 'large_transactions',
        interval: 'daily',
        parameters: { threshold: 500_000 },
      }),
    );
    const next = new Date(schedule.next_run * 1000);
    expect(next.toISOString()).toBe(`${new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)}T00:00:00.000Z`);
    expect(await t.platform.reports.runSchedules(new Date(next.getTime() - 1000))).toBe(0);
    const runAt = new Date(next.getTime() + 5_000);
    expect(await t.platform.reports.runSchedules(runAt)).toBe(1);
    expect(await t.platform.reports.runSchedules(runAt)).toBe(0);
    const { data } = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reports?type=large_transactions'));
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({
      schedule: schedule.id,
      parameters: { from: today(), to: today(), threshold: 500_000 },
      status: 'pending',
    });
    const after = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/report_schedules/${schedule.id}`));
    expect(after.last_report).toBe(data[0].id);
    expect(after.next_run).toBe(schedule.next_run + 86_400);

    const monthly = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/report_schedules/${schedule.id}`, { interval: 'monthly' }),
    );
    expect(new Date(monthly.next_run * 1000).getUTCDate()).toBe(1);
    const list = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/report_schedules'));
    expect(list.data.map((s: any) => s.id)).toEqual([schedule.id]);
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/report_schedules/${schedule.id}`));
    expect((await call(t.app, tenant.testKey, 'GET', `/v1/report_schedules/${schedule.id}`)).statusCode).toBe(404);
  });

  it('a monthly summary schedule covers the previous month', async () => {
    const tenant = await createTenant(t.app, 'Monthly schedule');
    const schedule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/report_schedules', {
        type: 'transaction_summary',
        interval: 'monthly',
        format: 'pdf',
      }),
    );
    await t.platform.reports.runSchedules(new Date(schedule.next_run * 1000));
    const { data } = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reports'));
    expect(data[0].parameters).toEqual({ month: today().slice(0, 7) });
  });
});

describe('errors, scopes and tenants', () => {
  let tenant: TestTenant;
  let other: TestTenant;
  let reportId: string;

  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Report errors');
    other = await createTenant(t.app, 'Report other');
    reportId = (await produce(tenant, { type: 'pci_access_review', format: 'json' })).id;
  });

  it.each([
    [{ type: 'nope' }, 'type'],
    [{ type: 'large_transactions' }, 'parameters[from]'],
    [{ type: 'large_transactions', parameters: { from: '2026-02-30', to: '2026-03-01' } }, 'parameters[from]'],
    [{ type: 'large_transactions', parameters: { from: '2026-03-02', to: '2026-03-01' } }, 'parameters[from]'],
    [{ type: 'large_transactions', parameters: { from: '2024-01-01', to: '2026-03-01' } }, 'parameters[to]'],
    [{ type: 'large_transactions', parameters: { from: '2026-03-01', to: '2026-03-01', x: 1 } }, 'parameters[x]'],
    [
      { type: 'large_transactions', parameters: { from: '2026-03-01', to: '2026-03-01', rates: { eur: 1.1 } } },
      'parameters[rates][eur]',
    ],
    [
      { type: 'large_transactions', format: 'camt.053', parameters: { from: '2026-03-01', to: '2026-03-01' } },
      'format',
    ],
    [
      {
        type: 'settlement_statement',
        format: 'pdf',
        parameters: { currency: 'usd', from: '2026-03-01', to: '2026-03-01' },
      },
      'format',
    ],
    [{ type: 'transaction_summary', parameters: { month: '2026-13' } }, 'parameters[month]'],
    [{ type: 'pci_access_review', extra: true }, 'extra'],
  ])('POST /v1/reports %j → 400 on %s', async (body, param) => {
    const response = await call(t.app, tenant.testKey, 'POST', '/v1/reports', body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('schedules refuse the period parameters and bad intervals', async () => {
    const period = await call(t.app, tenant.testKey, 'POST', '/v1/report_schedules', {
      type: 'large_transactions',
      interval: 'daily',
      parameters: { from: '2026-03-01' },
    });
    expect(period.statusCode).toBe(400);
    expect(period.json().error.param).toBe('parameters[from]');
    const interval = await call(t.app, tenant.testKey, 'POST', '/v1/report_schedules', {
      type: 'large_transactions',
      interval: 'hourly',
    });
    expect(interval.statusCode).toBe(400);
    expect(interval.json().error.param).toBe('interval');
  });

  it('401 without a key, 403 without the scope, 404 for another tenant or mode', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/reports' })).statusCode).toBe(401);
    const readOnly = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['reports:read'] }));
    const forbidden = await call(t.app, readOnly.secret, 'POST', '/v1/reports', { type: 'pci_access_review' });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.type).toBe('permission_error');
    expect((await call(t.app, readOnly.secret, 'GET', `/v1/reports/${reportId}/file`)).statusCode).toBe(200);
    const noScope = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }));
    expect((await call(t.app, noScope.secret, 'GET', '/v1/reports')).statusCode).toBe(403);
    for (const url of [`/v1/reports/${reportId}`, `/v1/reports/${reportId}/file`]) {
      for (const key of [other.testKey, tenant.liveKey]) {
        const response = await call(t.app, key, 'GET', url);
        expect(response.statusCode).toBe(404);
        expect(response.json().error.code).toBe('resource_missing');
      }
    }
    const schedule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/report_schedules', {
        type: 'pci_access_review',
        interval: 'weekly',
      }),
    );
    expect((await call(t.app, other.testKey, 'GET', `/v1/report_schedules/${schedule.id}`)).statusCode).toBe(404);
    expect((await call(t.app, other.testKey, 'DELETE', `/v1/report_schedules/${schedule.id}`)).statusCode).toBe(404);
  });

  it('the OpenAPI document describes the report and case routes', async () => {
    const document = await ok(await t.app.inject({ method: 'GET', url: '/openapi.json' }));
    for (const path of ['/v1/reports', '/v1/reports/{id}/file', '/v1/report_schedules/{id}', '/v1/cases/{id}/filing'])
      expect(Object.keys(document.paths)).toContain(path);
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(['Report', 'ReportSchedule', 'Case']),
    );
  });

  it('records each download', async () => {
    await download(tenant, reportId);
    const [row] = await t.admin<{ download_count: number; last_downloaded_by: string }[]>`
      SELECT download_count, last_downloaded_by FROM reports WHERE id = ${reportId}`;
    expect(row.download_count).toBeGreaterThan(0);
    expect(row.last_downloaded_by).toBe(tenant.testKeyId);
  });
});
