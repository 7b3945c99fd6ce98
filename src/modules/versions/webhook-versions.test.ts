import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnOwnDatabase, call, card, ok, PLATFORM_KEY, TEST_CARDS, type TestApp } from '../../../test/helpers.js';
import { waitFor } from '../../../test/process.js';
import { startReceiver } from '../../../test/webhook-receiver.js';
import { WebhookDispatcher } from '../../workers/webhook-delivery.js';
import { LATEST_API_VERSION } from './versions.js';

// A webhook body is the event as its receiver's tenant would read it from the API: a tenant pinned to an
// older version keeps receiving the older shape after a newer version ships.

const FIRST = '2026-11-01';
let t: TestApp;
let dispatcher: WebhookDispatcher;
const receivers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  // Its own database: a dispatcher on the shared one would deliver other test files' events too.
  t = await bootAppOnOwnDatabase('webhook_versions', { WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8' });
  dispatcher = new WebhookDispatcher({ ...t.platform, log: t.app.log }, { idleWaitMs: 10 });
  dispatcher.start();
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await dispatcher?.stop();
  await t?.close();
});

/** A tenant on `apiVersion` with an endpoint for balance.available, and a settled payment: one delivery. */
async function settlementDelivered(name: string, apiVersion: string) {
  const tenant = await ok(await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name, api_version: apiVersion }));
  const key = tenant.secret_keys.test.secret as string;
  const receiver = await startReceiver();
  receivers.push(receiver);
  const endpoint = await ok(
    await call(t.app, key, 'POST', '/v1/webhook_endpoints', {
      url: receiver.url,
      enabled_events: ['balance.available'],
    }),
  );
  const payment = await ok(
    await call(t.app, key, 'POST', '/v1/payments', {
      amount: 4_000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    }),
  );
  const txn = await ok(await call(t.app, key, 'GET', `/v1/balance_transactions/${payment.balance_transaction}`));
  await t.platform.settlements.run(new Date(txn.available_on * 1000));
  await waitFor(() => receiver.received.length >= 1, 20_000, `${name}: a balance.available delivery`);
  const [delivery] = receiver.received;
  const body = new Webhook(endpoint.secret).verify(delivery.body, delivery.headers as Record<string, string>) as {
    api_version: string;
    data: { object: { settlement_date: unknown } };
  };
  return { body, day: new Date(txn.available_on * 1000).toISOString().slice(0, 10), seconds: txn.available_on };
}

describe('webhook bodies in the receiving tenant’s API version', () => {
  it('sends dates as Unix seconds to a tenant on the latest version', async () => {
    const { body, seconds } = await settlementDelivered('Latest receiver', LATEST_API_VERSION);
    expect(body.api_version).toBe(LATEST_API_VERSION);
    expect(body.data.object.settlement_date).toBe(seconds);
  });

  it('sends the older YYYY-MM-DD shape to a tenant pinned to 2026-11-01', async () => {
    const { body, day } = await settlementDelivered('Pinned receiver', FIRST);
    expect(body.api_version).toBe(FIRST);
    expect(body.data.object.settlement_date).toBe(day);
  });
});
