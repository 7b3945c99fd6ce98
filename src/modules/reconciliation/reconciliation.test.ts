import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  createTenant,
  ok,
  payByCard,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { SETTLEMENT_REPORT_COLUMNS } from '../connectors/settlement-reports.js';

let t: TestApp;

beforeAll(async () => {
  t = await bootApp();
});
afterAll(() => t.close());

// The reports cover a UTC day; the tests reconcile the day their payments were made in.
const today = () => new Date().toISOString().slice(0, 10);

const pay = (tenant: TestTenant, amount: number, extra: Record<string, unknown> = {}, number = TEST_CARDS.visa) =>
  payByCard(t.app, tenant.testKey, amount, extra, number);

async function captureManually(tenant: TestTenant, authorized: number, captured: number) {
  const payment = await pay(tenant, authorized, { capture_method: 'manual' });
  expect(payment.status).toBe('requires_capture');
  return ok(
    await call(t.app, tenant.testKey, 'POST', `/v1/payments/${payment.id}/capture`, { amount_to_capture: captured }),
  );
}

async function refund(tenant: TestTenant, payment: string, amount: number) {
  return ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment, amount }));
}

async function reportsOf(tenant: TestTenant, query = '') {
  return (await ok(await call(t.app, tenant.testKey, 'GET', `/v1/reconciliation_reports?limit=100${query}`)))
    .data as any[];
}

async function itemsOf(tenant: TestTenant, reportId: string, query = '') {
  return (
    await ok(await call(t.app, tenant.testKey, 'GET', `/v1/reconciliation_reports/${reportId}/items?limit=100${query}`))
  ).data as any[];
}

async function reference(paymentId: string) {
  const [row] = await t.admin<
    { processor_reference: string }[]
  >`SELECT processor_reference FROM payments WHERE id = ${paymentId}`;
  return row.processor_reference;
}

type Line = Record<(typeof SETTLEMENT_REPORT_COLUMNS)[number], string>;

/** Rewrites the stored processor report, as a processor whose records differ from ours would send it. */
async function tamper(processor: string, day: string, change: (lines: Line[]) => Line[]) {
  const [stored] = await t.admin<
    { csv: string }[]
  >`SELECT csv FROM processor_reports WHERE processor = ${processor} AND report_date = ${day}`;
  const lines = change(parse(stored.csv, { columns: true }) as Line[]);
  const csv = stringify(lines, { header: true, columns: [...SETTLEMENT_REPORT_COLUMNS] });
  await t.admin`UPDATE processor_reports SET csv = ${csv}, reconciled_at = NULL WHERE processor = ${processor} AND report_date = ${day}`;
}

const pick = (report: any) => ({
  processor_count: report.processor_count,
  processor_amount: report.processor_amount,
  ledger_count: report.ledger_count,
  ledger_amount: report.ledger_amount,
  matched_count: report.matched_count,
  matched_amount: report.matched_amount,
  missing_in_ledger_count: report.missing_in_ledger_count,
  missing_in_ledger_amount: report.missing_in_ledger_amount,
  missing_in_report_count: report.missing_in_report_count,
  missing_in_report_amount: report.missing_in_report_amount,
  amount_mismatch_count: report.amount_mismatch_count,
  amount_mismatch_amount: report.amount_mismatch_amount,
  difference: report.difference,
});

describe('reconciling a day', () => {
  it('matches every capture (automatic, partial manual, after failover) and refund, per processor and currency, with totals', async () => {
    const tenant = await createTenant(t.app, 'Reconciliation balanced');
    const automatic = await pay(tenant, 2000);
    const partial = await captureManually(tenant, 5000, 3000);
    const refunded = await pay(tenant, 1500);
    const partialRefund = await refund(tenant, refunded.id, 500);
    const euro = await pay(tenant, 1200, { currency: 'eur' });
    // Fails on sim_alpha, so sim_beta captures it and reports it.
    const failedOver = await pay(tenant, 800, {}, TEST_CARDS.processingError);
    expect(failedOver.processor).toBe('sim_beta');
    const day = today();

    expect(await t.platform.reconciliation.run(day)).toBe(2);

    const reports = await reportsOf(tenant);
    expect(reports.map((r) => `${r.processor} ${r.currency}`).sort()).toEqual([
      'sim_alpha eur',
      'sim_alpha usd',
      'sim_beta usd',
    ]);
    for (const report of reports)
      expect(report).toMatchObject({
        object: 'reconciliation_report',
        report_date: Date.parse(`${day}T00:00:00Z`) / 1000,
        status: 'balanced',
        livemode: false,
      });
    const usd = reports.find((r) => r.processor === 'sim_alpha' && r.currency === 'usd');
    expect(pick(usd)).toEqual({
      processor_count: 4,
      processor_amount: 6000,
      ledger_count: 4,
      ledger_amount: 6000,
      matched_count: 4,
      matched_amount: 6000,
      missing_in_ledger_count: 0,
      missing_in_ledger_amount: 0,
      missing_in_report_count: 0,
      missing_in_report_amount: 0,
      amount_mismatch_count: 0,
      amount_mismatch_amount: 0,
      difference: 0,
    });
    expect(reports.find((r) => r.currency === 'eur')).toMatchObject({
      matched_count: 1,
      matched_amount: 1200,
      difference: 0,
    });
    expect(reports.find((r) => r.processor === 'sim_beta')).toMatchObject({
      matched_count: 1,
      matched_amount: 800,
      processor_count: 1,
      ledger_count: 1,
    });

    const items = await itemsOf(tenant, usd.id);
    expect(items.every((item) => item.status === 'matched' && item.report === usd.id && item.difference === 0)).toBe(
      true,
    );
    const bySource = Object.fromEntries(items.map((item) => [item.source, item]));
    expect(bySource[automatic.id]).toMatchObject({
      type: 'capture',
      reference: await reference(automatic.id),
      processor_amount: 2000,
      ledger_amount: 2000,
      balance_transaction: automatic.balance_transaction,
    });
    expect(bySource[partial.id]).toMatchObject({
      type: 'capture',
      processor_amount: 3000,
      ledger_amount: 3000,
      balance_transaction: partial.balance_transaction,
    });
    expect(bySource[refunded.id]).toMatchObject({ processor_amount: 1500 });
    expect(bySource[partialRefund.id]).toMatchObject({
      type: 'refund',
      reference: partialRefund.id,
      processor_amount: -500,
      ledger_amount: -500,
      balance_transaction: partialRefund.balance_transaction,
    });
    expect(euro.balance_transaction).toBeTruthy();

    // Today's report is provisional: fetched again, it takes in what happened since.
    const later = await pay(tenant, 700);
    await t.platform.reconciliation.run(day);
    const again = (await reportsOf(tenant)).find((r) => r.id === usd.id);
    expect(again).toMatchObject({ status: 'balanced', matched_count: 5, matched_amount: 6700 });
    expect((await itemsOf(tenant, usd.id)).map((item) => item.source)).toContain(later.id);
  });

  it('finds an amount changed, a line dropped and a line added in the processor report, and the CSV says the same', async () => {
    const tenant = await createTenant(t.app, 'Reconciliation discrepancies');
    const kept = await pay(tenant, 2000);
    const changed = await pay(tenant, 3000);
    const dropped = await captureManually(tenant, 1500, 1000);
    const refunded = await refund(tenant, kept.id, 700);
    const day = today();
    await t.platform.reconciliation.run(day);
    const [before] = await reportsOf(tenant, '&processor=sim_alpha');
    expect(before).toMatchObject({ status: 'balanced', matched_count: 4, difference: 0 });

    const changedRef = await reference(changed.id);
    const droppedRef = await reference(dropped.id);
    await tamper('sim_alpha', day, (lines) => [
      ...lines
        .filter((line) => line.reference !== droppedRef)
        .map((line) => (line.reference === changedRef ? { ...line, amount: '2900' } : line)),
      {
        processor: 'sim_alpha',
        report_date: day,
        tenant_id: tenant.id,
        livemode: 'false',
        type: 'capture',
        reference: 'sim_alpha_unknown0000',
        currency: 'usd',
        amount: '999',
      },
    ]);
    await t.platform.reconciliation.reconcile('sim_alpha', day);

    const [after] = await reportsOf(tenant, '&processor=sim_alpha');
    expect(after.id).toBe(before.id);
    expect(after.status).toBe('discrepancies');
    expect(pick(after)).toEqual({
      processor_count: 4,
      processor_amount: 2000 + 2900 - 700 + 999,
      ledger_count: 4,
      ledger_amount: 2000 + 3000 + 1000 - 700,
      matched_count: 2,
      matched_amount: 2000 - 700,
      missing_in_ledger_count: 1,
      missing_in_ledger_amount: 999,
      missing_in_report_count: 1,
      missing_in_report_amount: 1000,
      amount_mismatch_count: 1,
      amount_mismatch_amount: -100,
      difference: 999 - 1000 - 100,
    });

    const items = await itemsOf(tenant, after.id);
    expect(items).toHaveLength(5);
    // Discrepancies are listed first.
    expect(
      items
        .slice(0, 3)
        .map((item) => item.status)
        .sort(),
    ).toEqual(['amount_mismatch', 'missing_in_ledger', 'missing_in_report']);
    const [mismatch] = await itemsOf(tenant, after.id, '&status=amount_mismatch');
    expect(mismatch).toMatchObject({
      type: 'capture',
      reference: changedRef,
      source: changed.id,
      processor_amount: 2900,
      ledger_amount: 3000,
      difference: -100,
    });
    const [missingInReport] = await itemsOf(tenant, after.id, '&status=missing_in_report');
    expect(missingInReport).toMatchObject({
      reference: droppedRef,
      source: dropped.id,
      balance_transaction: dropped.balance_transaction,
      processor_amount: null,
      ledger_amount: 1000,
      difference: -1000,
    });
    const [missingInLedger] = await itemsOf(tenant, after.id, '&status=missing_in_ledger');
    expect(missingInLedger).toMatchObject({
      reference: 'sim_alpha_unknown0000',
      source: null,
      balance_transaction: null,
      processor_amount: 999,
      ledger_amount: null,
      difference: 999,
    });
    expect((await itemsOf(tenant, after.id, '&status=matched')).map((item) => item.source).sort()).toEqual(
      [kept.id, refunded.id].sort(),
    );
    expect(await reportsOf(tenant, '&status=balanced&processor=sim_alpha')).toEqual([]);
    expect((await reportsOf(tenant, `&status=discrepancies&report_date=${day}&currency=usd`)).map((r) => r.id)).toEqual(
      [after.id],
    );

    const download = await call(t.app, tenant.testKey, 'GET', `/v1/reconciliation_reports/${after.id}/csv`);
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-type']).toMatch(/^text\/csv/);
    expect(download.headers['content-disposition']).toBe(
      `attachment; filename="reconciliation-sim_alpha-${day}-usd-${after.id}.csv"`,
    );
    const rows = parse(download.body, { columns: true }) as Record<string, string>[];
    const asText = (value: number | null) => (value === null ? '' : String(value));
    expect(rows).toEqual(
      items.map((item) => ({
        id: item.id,
        processor: 'sim_alpha',
        report_date: day,
        currency: 'usd',
        status: item.status,
        type: item.type,
        reference: item.reference,
        source: item.source ?? '',
        balance_transaction: item.balance_transaction ?? '',
        processor_amount: asText(item.processor_amount),
        ledger_amount: asText(item.ledger_amount),
        difference: String(item.difference),
      })),
    );

    // Running it again replaces the report in place: same id, same totals, no duplicate items.
    await t.platform.reconciliation.reconcile('sim_alpha', day);
    const rerun = await reportsOf(tenant, '&processor=sim_alpha');
    expect(rerun.map((r) => r.id)).toEqual([after.id]);
    expect(pick(rerun[0])).toEqual(pick(after));
    expect(await itemsOf(tenant, after.id)).toHaveLength(5);
  });

  it('reconciles a tenant the processor report leaves out entirely: everything is missing in the report', async () => {
    const tenant = await createTenant(t.app, 'Reconciliation left out');
    const payment = await pay(tenant, 4200);
    const day = today();
    await t.platform.reconciliation.run(day);
    await tamper('sim_alpha', day, (lines) => lines.filter((line) => line.tenant_id !== tenant.id));
    await t.platform.reconciliation.reconcile('sim_alpha', day);
    const [report] = await reportsOf(tenant);
    expect(report).toMatchObject({
      status: 'discrepancies',
      processor_count: 0,
      ledger_count: 1,
      missing_in_report_count: 1,
      missing_in_report_amount: 4200,
      difference: -4200,
    });
    expect(await itemsOf(tenant, report.id)).toMatchObject([{ status: 'missing_in_report', source: payment.id }]);
  });

  it('refuses a malformed processor report, naming the line, and writes nothing from it', async () => {
    const tenant = await createTenant(t.app, 'Reconciliation malformed');
    await pay(tenant, 1000);
    const day = today();
    await t.platform.reconciliation.run(day);
    const [before] = await reportsOf(tenant);
    await tamper('sim_alpha', day, (lines) => [...lines, { ...lines[0], amount: '12.50' }]);
    await expect(t.platform.reconciliation.reconcile('sim_alpha', day)).rejects.toThrow(
      /line \d+: amount "12.50" is not valid/,
    );
    expect((await reportsOf(tenant))[0]).toEqual(before);
    // A fresh fetch replaces the provisional report with a well-formed one.
    await t.platform.reconciliation.run(day);
  });

  it('a line for a tenant we do not know fails the run (so the job retries it), while every other tenant is still reconciled', async () => {
    const tenant = await createTenant(t.app, 'Reconciliation beside a stranger');
    const payment = await pay(tenant, 2500);
    const day = today();
    await t.platform.reconciliation.run(day);
    await tamper('sim_alpha', day, (lines) => [
      ...lines.filter((line) => line.tenant_id !== tenant.id),
      {
        processor: 'sim_alpha',
        report_date: day,
        tenant_id: 'ten_unknown',
        livemode: 'false',
        type: 'capture',
        reference: 'sim_alpha_stranger',
        currency: 'usd',
        amount: '100',
      },
    ]);
    await expect(t.platform.reconciliation.reconcile('sim_alpha', day)).rejects.toThrow(
      /^1 of \d+ tenants of the sim_alpha report .* failed/,
    );
    const [report] = await reportsOf(tenant);
    expect(report).toMatchObject({
      status: 'discrepancies',
      missing_in_report_count: 1,
      missing_in_report_amount: 2500,
    });
    expect(await itemsOf(tenant, report.id)).toMatchObject([{ status: 'missing_in_report', source: payment.id }]);
    const [stored] = await t.admin<
      { reconciled_at: Date | null }[]
    >`SELECT reconciled_at FROM processor_reports WHERE processor = 'sim_alpha' AND report_date = ${day}`;
    expect(stored.reconciled_at).toBeNull();
    await t.platform.reconciliation.run(day);
  });

  it('the daily job reconciles yesterday once its report is final, and a second pass does nothing', async () => {
    const now = new Date(`${today()}T12:00:00.000Z`);
    const yesterday = new Date(now.getTime() - 86_400_000).toISOString().slice(0, 10);
    expect(await t.platform.reconciliation.run(undefined, now)).toBe(2);
    expect(await t.platform.reconciliation.run(undefined, now)).toBe(0);
    const stored = await t.admin<{ processor: string; final: boolean; reconciled_at: Date | null }[]>`
      SELECT processor, final, reconciled_at FROM processor_reports WHERE report_date = ${yesterday} ORDER BY processor`;
    expect(stored.map((r) => [r.processor, r.final, r.reconciled_at !== null])).toEqual([
      ['sim_alpha', true, true],
      ['sim_beta', true, true],
    ]);
  });
});

describe('security', () => {
  let owner: TestTenant;
  let reportId: string;

  beforeAll(async () => {
    owner = await createTenant(t.app, 'Reconciliation owner');
    await pay(owner, 1000);
    await t.platform.reconciliation.run(today());
    [{ id: reportId }] = await reportsOf(owner);
  });

  it("another tenant's key, and the owner's live key, get 404 on the report, its items and its CSV", async () => {
    const other = await createTenant(t.app, 'Reconciliation other');
    for (const key of [other.testKey, owner.liveKey]) {
      for (const path of ['', '/items', '/csv']) {
        const response = await call(t.app, key, 'GET', `/v1/reconciliation_reports/${reportId}${path}`);
        expect(response.statusCode, path).toBe(404);
        expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
      }
    }
    expect((await ok(await call(t.app, other.testKey, 'GET', '/v1/reconciliation_reports'))).data).toEqual([]);
  });

  it('needs the reconciliation:read scope', async () => {
    const allowed = await ok(
      await call(t.app, owner.testKey, 'POST', '/v1/api_keys', { scopes: ['reconciliation:read'] }),
    );
    const denied = await ok(await call(t.app, owner.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }));
    expect((await call(t.app, allowed.secret, 'GET', `/v1/reconciliation_reports/${reportId}`)).statusCode).toBe(200);
    const refused = await call(t.app, denied.secret, 'GET', `/v1/reconciliation_reports/${reportId}/csv`);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.type).toBe('permission_error');
    expect(
      (await call(t.app, owner.testKey, 'GET', '/v1/reconciliation_reports', undefined, { authorization: '' }))
        .statusCode,
    ).toBe(401);
  });

  it.each([
    ['/v1/reconciliation_reports/recon_missing', 404, 'resource_missing'],
    ['/v1/reconciliation_reports/recon_missing/items', 404, 'resource_missing'],
    ['/v1/reconciliation_reports/recon_missing/csv', 404, 'resource_missing'],
    [`/v1/reconciliation_reports/${'x'.repeat(65)}`, 404, 'resource_missing'],
    ['/v1/reconciliation_reports?bogus=1', 400, 'parameter_unknown'],
    ['/v1/reconciliation_reports?report_date=2026-13-45', 400, null],
    ['/v1/reconciliation_reports?status=fine', 400, null],
    ['/v1/reconciliation_reports?currency=USD', 400, null],
    ['/v1/reconciliation_reports?limit=0', 400, null],
    ['/v1/reconciliation_reports/recon_missing/items?status=lost', 400, null],
  ])('%s -> %i with the error envelope', async (url, status, code) => {
    const response = await call(t.app, owner.testKey, 'GET', url);
    expect(response.statusCode, response.body).toBe(status);
    const error = response.json().error;
    expect(error.type).toBe('invalid_request_error');
    expect(error.request_id).toBe(response.headers['request-id']);
    if (code) expect(error.code).toBe(code);
  });
});
