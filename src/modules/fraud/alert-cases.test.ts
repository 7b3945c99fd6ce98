import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootWithTenants,
  call,
  card,
  newCustomer,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

// Fraud blocks and block-list hits open compliance cases with the payment's outcome (one
// transaction), one case per subject (customer, else card) and UTC day while it is being worked.

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  [t, tenant, other] = await bootWithTenants('Alert cases', 'Other alert cases');
});
afterAll(() => t.close());

async function listId(key: string, name: string) {
  const lists = await ok(await call(t.app, key, 'GET', '/v1/fraud/lists'));
  return (lists.data as { id: string; name: string }[]).find((l) => l.name === name)!.id;
}

async function casesWith(key: string, paymentId: string) {
  const listed = await ok(await call(t.app, key, 'GET', '/v1/cases?limit=100'));
  return (listed.data as { payments: string[] }[]).filter((c) => c.payments.includes(paymentId)) as Record<
    string,
    any
  >[];
}

const pay = (key: string, body: Record<string, unknown>) =>
  call(t.app, key, 'POST', '/v1/payments', { currency: 'usd', confirm: true, ...body });

describe('cases opened by the fraud decision', () => {
  it('a payment blocked through the default list opens a list_hit case with the payment, amount and subject', async () => {
    const customer = await newCustomer(t.app, tenant.testKey);
    const blocked = await pay(tenant.testKey, { amount: 4321, customer, payment_method: card(TEST_CARDS.fraud) });
    expect(blocked.statusCode, blocked.body).toBe(402);
    const payment = blocked.json().error.payment;
    expect(payment.outcome).toMatchObject({ action: 'block', rule: { name: 'Block listed values' } });

    const [found] = await casesWith(tenant.testKey, payment.id);
    expect(found).toMatchObject({
      object: 'case',
      kind: 'list_hit',
      status: 'open',
      payments: [payment.id],
      amount: 4321,
      currency: 'usd',
      subject: { customer },
    });
    expect(found.subject.card_fingerprint).toMatch(/\S/);
    expect(found.narrative).toContain(payment.id);
    expect(found.narrative).toContain('blocked_cards');
    // Its own record, readable by id; another tenant's key gets 404 for it.
    expect(await ok(await call(t.app, tenant.testKey, 'GET', `/v1/cases/${found.id}`))).toMatchObject({
      id: found.id,
    });
    const foreign = await call(t.app, other.testKey, 'GET', `/v1/cases/${found.id}`);
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().error).toMatchObject({ type: 'invalid_request_error' });
    expect(await casesWith(other.testKey, payment.id)).toEqual([]);
  });

  it("a rule's block opens a fraud_block case; the subject's further blocks of the day join it, until it is dismissed", async () => {
    const rule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules', {
        name: 'Block 77.77',
        expression: 'amount == 7777',
        action: 'block',
        priority: 1,
      }),
    );
    const customer = await newCustomer(t.app, tenant.testKey);
    const body = { amount: 7777, customer, payment_method: card(TEST_CARDS.visa) };
    const first = (await pay(tenant.testKey, body)).json().error.payment;
    const second = (await pay(tenant.testKey, body)).json().error.payment;
    expect([first.outcome.action, second.outcome.action]).toEqual(['block', 'block']);
    // An allowed payment of the same customer is no alert and joins nothing.
    const allowed = await ok(await pay(tenant.testKey, { ...body, amount: 2000 }));
    expect(allowed.outcome.action).toBe('allow');

    const [joined] = await casesWith(tenant.testKey, first.id);
    expect(joined).toMatchObject({
      kind: 'fraud_block',
      payments: [first.id, second.id],
      amount: 15_554,
      currency: 'usd',
      subject: { customer },
    });
    expect(joined.narrative).toContain("blocked by rule 'Block 77.77'");
    expect(await casesWith(tenant.testKey, allowed.id)).toEqual([]);
    // The first payment confirmed anew with another card and blocked again is in the case once.
    const again = await call(t.app, tenant.testKey, 'POST', `/v1/payments/${first.id}/confirm`, {
      payment_method: card(TEST_CARDS.debit),
    });
    expect(again.json().error.payment.outcome.action).toBe('block');
    expect((await casesWith(tenant.testKey, first.id))[0]).toMatchObject({
      id: joined.id,
      payments: [first.id, second.id],
      amount: 15_554,
    });

    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/cases/${joined.id}`, { status: 'dismissed' }));
    const third = (await pay(tenant.testKey, body)).json().error.payment;
    const [fresh] = await casesWith(tenant.testKey, third.id);
    expect(fresh.id).not.toBe(joined.id);
    expect(fresh).toMatchObject({ status: 'open', payments: [third.id], amount: 7777 });
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${rule.id}`));
  });

  it('a block-list hit opens a case even when an allow-list lets the payment through', async () => {
    const email = 'listed-and-allowed@example.com';
    for (const list of ['blocked_emails', 'allowed_emails'])
      await ok(
        await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${await listId(tenant.testKey, list)}/items`, {
          value: email,
        }),
      );
    const payment = await ok(
      await pay(tenant.testKey, { amount: 2500, payment_method: card(TEST_CARDS.visa), fraud_details: { email } }),
    );
    expect(payment.outcome).toMatchObject({ action: 'allow', rule: { name: 'allowed_emails' } });
    const [found] = await casesWith(tenant.testKey, payment.id);
    expect(found).toMatchObject({
      kind: 'list_hit',
      payments: [payment.id],
      amount: 2500,
      subject: { customer: null },
    });
    expect(found.narrative).toContain("allowed by 'allowed_emails'");
    expect(found.narrative).toContain('blocked_emails');
  });

  it('blocks of one card in parallel (one write batch) gather in one case', async () => {
    const rule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules', {
        name: 'Block 88.88',
        expression: 'amount == 8888',
        action: 'block',
        priority: 2,
      }),
    );
    const n = 6;
    const responses = await Promise.all(
      Array.from({ length: n }, () => pay(tenant.testKey, { amount: 8888, payment_method: card('4000056655665556') })),
    );
    const ids = responses.map((r) => r.json().error.payment.id as string);
    const [found] = await casesWith(tenant.testKey, ids[0]);
    expect([...found.payments].sort()).toEqual([...ids].sort());
    expect(found).toMatchObject({ kind: 'fraud_block', amount: n * 8888 });
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${rule.id}`));
  });
});
