import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp({ WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8' });
  tenant = await createTenant(t.app, 'Audited integrations');
});
afterAll(() => t?.close());

interface Entry {
  action: string;
  actor: { type: string; id: string };
  target: { type: string; id: string };
  changes: { before: Record<string, unknown> | null; after: Record<string, unknown> | null };
  request_id: string | null;
}

async function entriesAbout(id: string): Promise<Entry[]> {
  const page = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/audit_logs?limit=100'));
  return (page.data as Entry[]).filter((entry) => entry.target.id === id).reverse();
}

describe('audit entries of the integration and compliance settings', () => {
  it('webhook endpoints: created, updated, secret rotated, deleted; never the secret', async () => {
    const created = await call(t.app, tenant.testKey, 'POST', '/v1/webhook_endpoints', {
      url: 'http://127.0.0.1:9/hooks',
      enabled_events: ['payment.*'],
    });
    const endpoint = await ok(created);
    await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/webhook_endpoints/${endpoint.id}`, { description: 'shop' }),
    );
    const rotated = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`, {}),
    );
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/webhook_endpoints/${endpoint.id}`));

    const entries = await entriesAbout(endpoint.id);
    expect(entries.map((e) => e.action)).toEqual([
      'webhook_endpoint.created',
      'webhook_endpoint.updated',
      'webhook_endpoint.secret_rotated',
      'webhook_endpoint.deleted',
    ]);
    expect(entries[0]).toMatchObject({
      actor: { type: 'api_key', id: tenant.testKeyId },
      request_id: created.headers['request-id'],
      changes: { after: { url: 'http://127.0.0.1:9/hooks', enabled_events: ['payment.*'] } },
    });
    expect(entries[1].changes).toEqual({ before: { description: null }, after: { description: 'shop' } });
    const stored = JSON.stringify(await t.admin`SELECT content FROM audit_entries WHERE target_id = ${endpoint.id}`);
    expect(stored).not.toContain(endpoint.secret);
    expect(stored).not.toContain(rotated.secret);
  });

  it('fraud rules and lists: each change with what it was and became', async () => {
    const rule = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules', {
        name: 'Big spenders',
        expression: 'amount > 500000',
        action: 'review',
      }),
    );
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/rules/${rule.id}`, { action: 'block' }));
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${rule.id}`));
    expect((await entriesAbout(rule.id)).map((e) => [e.action, e.changes])).toEqual([
      [
        'fraud_rule.created',
        {
          before: null,
          after: expect.objectContaining({ name: 'Big spenders', expression: 'amount > 500000', action: 'review' }),
        },
      ],
      ['fraud_rule.updated', { before: { action: 'review' }, after: { action: 'block' } }],
      ['fraud_rule.deleted', { before: expect.objectContaining({ action: 'block' }), after: null }],
    ]);

    const list = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/lists', { name: 'vip_emails', item_type: 'email' }),
    );
    const item = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${list.id}/items`, { value: 'vip@example.com' }),
    );
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/lists/${list.id}/items/${item.id}`));
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/lists/${list.id}`));
    expect((await entriesAbout(list.id)).map((e) => e.action)).toEqual(['fraud_list.created', 'fraud_list.deleted']);
    expect((await entriesAbout(item.id)).map((e) => [e.action, e.changes])).toEqual([
      ['fraud_list_item.added', { before: null, after: { list: list.id, value: 'vip@example.com' } }],
      ['fraud_list_item.removed', { before: { list: list.id, value: 'vip@example.com' }, after: null }],
    ]);
  });

  it('report downloads', async () => {
    const report = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/reports', { type: 'pci_access_review', format: 'csv' }),
    );
    await t.platform.reports.runPending();
    const download = await call(t.app, tenant.testKey, 'GET', `/v1/reports/${report.id}/file`);
    expect(download.statusCode).toBe(200);
    const [entry] = await entriesAbout(report.id);
    expect(entry).toMatchObject({
      action: 'report.downloaded',
      request_id: download.headers['request-id'],
      changes: { after: { type: 'pci_access_review', format: 'csv' } },
    });
  });

  it('suspicious activity filing exports', async () => {
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 2_500,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    const opened = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/cases', {
        subject: { name: 'A. Subject' },
        payments: [payment.id],
        narrative: 'One payment to look at.',
      }),
    );
    const exported = await call(t.app, tenant.testKey, 'GET', `/v1/cases/${opened.id}/filing`);
    expect(exported.statusCode).toBe(200);
    const entries = await entriesAbout(opened.id);
    expect(entries).toEqual([
      expect.objectContaining({
        action: 'case.filing_exported',
        actor: expect.objectContaining({ type: 'api_key', id: tenant.testKeyId }),
        request_id: exported.headers['request-id'],
        changes: { before: null, after: { status: 'open', kind: 'manual', transactions: 1 } },
      }),
    ]);
    // Another tenant's key neither reads the filing nor leaves an entry on this case.
    const other = await createTenant(t.app, 'Audited integrations, other');
    expect((await call(t.app, other.testKey, 'GET', `/v1/cases/${opened.id}/filing`)).statusCode).toBe(404);
    expect(await entriesAbout(opened.id)).toHaveLength(1);
  });
});
