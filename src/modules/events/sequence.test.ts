import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootWithTenants,
  call,
  card,
  ok,
  TEST_CARDS,
  verifiedBankAccount,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

interface ApiEvent {
  id: string;
  type: string;
  sequence: number;
  data: { object: { id: string; metadata: Record<string, string>; status: string } };
}

let t: TestApp;
let tenant: TestTenant;

async function eventsOf(objectId: string): Promise<ApiEvent[]> {
  const res = await call(t.app, tenant.testKey, 'GET', `/v1/events?object_id=${objectId}&limit=100`);
  expect(res.statusCode).toBe(200);
  return res.json().data;
}

const bySequence = (events: ApiEvent[]) => [...events].sort((a, b) => a.sequence - b.sequence);

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Sequence tenant');
});
afterAll(() => t.close());

describe('per-object sequence', () => {
  it('orders concurrent updates of one object as they were applied', async () => {
    const account = await verifiedBankAccount(t.app, tenant.testKey);
    // Each update merges one more key into the metadata, at once: the state each event carries
    // holds exactly the keys of the updates applied before it, so state order is commit order.
    const updates = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call(t.app, tenant.testKey, 'POST', `/v1/bank_accounts/${account.id}`, { metadata: { [`k${i}`]: 'x' } }),
      ),
    );
    for (const res of updates) expect(res.statusCode).toBe(200);
    const events = bySequence((await eventsOf(account.id)).filter((e) => e.type === 'bank_account.updated'));
    expect(events).toHaveLength(24);
    const sizes = events.map((e) => Object.keys(e.data.object.metadata).length);
    expect(sizes).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.sequence)).size).toBe(24);
    // The creation and verification came before every update.
    const all = bySequence(await eventsOf(account.id));
    expect(all.slice(0, 2).map((e) => e.type)).toEqual(['bank_account.created', 'bank_account.verified']);
  });

  it('follows each payment through the batched write path, under concurrent writes to it', async () => {
    const payments = await Promise.all(
      Array.from({ length: 12 }, async () =>
        ok(
          await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
            amount: 1000,
            currency: 'usd',
            payment_method: card(TEST_CARDS.visa),
            confirm: true,
            capture_method: 'manual',
          }),
        ),
      ),
    );
    // A capture and a cancel race on every payment at once, in shared batches: one of each pair wins.
    await Promise.all(
      payments.flatMap((p: { id: string }) => [
        call(t.app, tenant.testKey, 'POST', `/v1/payments/${p.id}/capture`),
        call(t.app, tenant.testKey, 'POST', `/v1/payments/${p.id}/cancel`),
      ]),
    );
    for (const payment of payments) {
      const events = bySequence(await eventsOf(payment.id));
      const types = events.map((e) => e.type);
      expect(types.slice(0, 2)).toEqual(['payment.created', 'payment.requires_capture']);
      expect(types).toHaveLength(3);
      expect(['payment.succeeded', 'payment.canceled']).toContain(types[2]);
      const final = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
      // The event with the highest sequence carries the payment as it now stands.
      // Without the client_secret, which API answers add and events never carry.
      const { client_secret: _secret, ...asInEvents } = final;
      expect(events[2].data.object).toEqual(asInEvents);
    }
  });

  it('is stored on every event and returned by retrieve', async () => {
    const [event] = (await call(t.app, tenant.testKey, 'GET', '/v1/events?limit=1')).json().data;
    const res = await call(t.app, tenant.testKey, 'GET', `/v1/events/${event.id}`);
    expect(res.json().sequence).toBe(event.sequence);
    const [row] = await t.admin<{ sequence: number }[]>`SELECT sequence FROM events WHERE id = ${event.id}`;
    expect(row.sequence).toBe(event.sequence);
  });
});
