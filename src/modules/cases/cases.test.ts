import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  newCustomer,
  call,
  card,
  createTenant,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { inScope } from '../../db/index.js';
import { openCase } from './service.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
let subject: string;
const payments: { id: string; amount: number }[] = [];

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Cases');
  other = await createTenant(t.app, 'Other cases');
  subject = await newCustomer(t.app, tenant.testKey, { name: 'A. Customer' });
  for (const amount of [4_000, 6_500]) {
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount,
        currency: 'usd',
        customer: subject,
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    payments.push({ id: payment.id, amount });
  }
});
afterAll(() => t.close());

describe('case lifecycle', () => {
  it('open → investigating → filed, with notes, assignee and the filing export', async () => {
    const opened = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/cases', {
        subject: { customer: subject, name: 'A. Customer' },
        payments: payments.map((p) => p.id),
        narrative: 'Two card payments the customer disowned by phone.',
      }),
    );
    expect(opened).toMatchObject({
      object: 'case',
      kind: 'manual',
      status: 'open',
      amount: 10_500,
      currency: 'usd',
      payments: payments.map((p) => p.id),
      notes: [],
    });
    expect(opened.period_start).toBeLessThanOrEqual(opened.period_end);

    const filedTooEarly = await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, { status: 'filed' });
    expect(filedTooEarly.statusCode).toBe(400);
    expect(filedTooEarly.json().error).toMatchObject({ code: 'case_unexpected_state', param: 'status' });

    const investigating = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, {
        status: 'investigating',
        assignee: 'compliance@acme.test',
      }),
    );
    expect(investigating).toMatchObject({ status: 'investigating', assignee: 'compliance@acme.test' });
    const noted = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}/notes`, {
        body: 'Called the issuer.',
        author: 'officer',
      }),
    );
    expect(noted.notes.map((n: any) => [n.body, n.author])).toEqual([['Called the issuer.', 'officer']]);

    const draft = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/cases/${opened.id}/filing`));
    expect(draft.filing_status).toBe('draft');
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, { status: 'filed' }));
    const filing = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/cases/${opened.id}/filing`));
    expect(filing).toMatchObject({
      object: 'suspicious_activity_filing',
      format_version: '1',
      case: opened.id,
      filing_status: 'filed',
      filer: { tenant: tenant.id, livemode: false },
      subject: { customer: subject, name: 'A. Customer' },
      activity: {
        kind: 'manual',
        total: { amount: 10_500, currency: 'usd' },
        amounts_by_currency: [{ currency: 'usd', amount: 10_500 }],
      },
      narrative: 'Two card payments the customer disowned by phone.',
      assignee: 'compliance@acme.test',
    });
    expect(filing.activity.transactions.map((x: any) => [x.payment, x.amount, x.card.last4])).toEqual(
      payments.map((p) => [p.id, p.amount, '4242']),
    );
    expect(new Date(filing.activity.date_range.from).getTime()).toBe(opened.period_start * 1000);
    expect(filing.notes).toHaveLength(1);

    const reopened = await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, { status: 'dismissed' });
    expect(reopened.statusCode).toBe(400);
    expect(reopened.json().error.message).toContain('closed');
    const listed = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/cases?status=filed'));
    expect(listed.data.map((c: any) => c.id)).toEqual([opened.id]);
  });

  it('an open case may be dismissed', async () => {
    const opened = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/cases', { subject: { email: 'x@y.test' } }));
    const dismissed = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, { status: 'dismissed' }),
    );
    expect(dismissed.status).toBe('dismissed');
    const [row] = await t.admin<
      { dismissed_at: Date | null }[]
    >`SELECT dismissed_at FROM cases WHERE id = ${opened.id}`;
    expect(row.dismissed_at).not.toBeNull();
  });

  it('openCase (for fraud blocks and list hits) opens one case per alert, in the caller’s transaction', async () => {
    const scope = { tenantId: tenant.id, livemode: false };
    const input = {
      kind: 'fraud_block' as const,
      subject: { card_fingerprint: 'fp_1' },
      paymentIds: [payments[0].id],
      amount: 4_000,
      currency: 'usd',
      sourceKey: `fraud_block:${payments[0].id}`,
    };
    const first = await inScope(t.platform.sql, scope, (tx) => openCase(tx, scope, input));
    const second = await inScope(t.platform.sql, scope, (tx) => openCase(tx, scope, input));
    expect(first.opened).toBe(true);
    expect(second).toEqual({ id: first.id, opened: false });
    await expect(
      inScope(t.platform.sql, scope, async (tx) => {
        await openCase(tx, scope, { ...input, sourceKey: 'rolled_back' });
        throw new Error('the blocking transaction failed');
      }),
    ).rejects.toThrow('the blocking transaction failed');
    const kinds = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/cases?kind=fraud_block'));
    expect(kinds.data.map((c: any) => c.id)).toEqual([first.id]);
  });
});

describe('errors, scopes and tenants', () => {
  it.each([
    [{}, 'subject'],
    [{ subject: { nickname: 'x' } }, 'subject[nickname]'],
    [{ subject: {}, payments: ['pay_unknown'] }, 'payments'],
    [{ subject: {}, status: 'open' }, 'status'],
  ])('POST /v1/cases %j → 400 on %s', async (body, param) => {
    const response = await call(t.app, tenant.testKey, 'POST', '/v1/cases', body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('bad updates and notes → 400; other tenants and modes → 404; 401 and 403', async () => {
    const opened = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/cases', { subject: {} }));
    const badStatus = await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}`, { status: 'closed' });
    expect(badStatus.statusCode).toBe(400);
    expect(badStatus.json().error.param).toBe('status');
    const emptyNote = await call(t.app, tenant.testKey, 'POST', `/v1/cases/${opened.id}/notes`, { body: '' });
    expect(emptyNote.statusCode).toBe(400);
    expect(emptyNote.json().error.param).toBe('body');
    // Another tenant's payment cannot be put on a case.
    const foreign = await call(t.app, other.testKey, 'POST', '/v1/cases', { subject: {}, payments: [payments[0].id] });
    expect(foreign.statusCode).toBe(400);
    for (const key of [other.testKey, tenant.liveKey]) {
      for (const [method, url, body] of [
        ['GET', `/v1/cases/${opened.id}`, undefined],
        ['GET', `/v1/cases/${opened.id}/filing`, undefined],
        ['POST', `/v1/cases/${opened.id}`, { status: 'investigating' }],
        ['POST', `/v1/cases/${opened.id}/notes`, { body: 'x' }],
      ] as const) {
        const response = await call(t.app, key, method, url, body);
        expect(response.statusCode, `${method} ${url}`).toBe(404);
      }
    }
    expect((await t.app.inject({ method: 'GET', url: '/v1/cases' })).statusCode).toBe(401);
    const reader = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['cases:read'] }));
    expect((await call(t.app, reader.secret, 'GET', `/v1/cases/${opened.id}`)).statusCode).toBe(200);
    const refused = await call(t.app, reader.secret, 'POST', `/v1/cases/${opened.id}/notes`, { body: 'x' });
    expect(refused.statusCode).toBe(403);
    const reports = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['reports:read'] }));
    expect((await call(t.app, reports.secret, 'GET', '/v1/cases')).statusCode).toBe(403);
  });
});
