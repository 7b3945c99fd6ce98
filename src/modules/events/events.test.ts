import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';

/** A payment as events carry it: without the client_secret that API answers add (see payments/client-view.ts). */
const asInEvents = ({ client_secret: _secret, ...payment }: Record<string, unknown>) => payment;

interface ApiEvent {
  id: string;
  object: 'event';
  type: string;
  created: number;
  livemode: boolean;
  data: { object: Record<string, unknown> & { id: string } };
  request: { id: string | null };
}

let t: TestApp;
let tenant: TestTenant;

const post = (url: string, body?: unknown) => call(t.app, tenant.testKey, 'POST', url, body);
const get = (url: string) => call(t.app, tenant.testKey, 'GET', url);

async function listEvents(query: string): Promise<ApiEvent[]> {
  const res = await get(`/v1/events${query}`);
  expect(res.statusCode).toBe(200);
  expect(res.json()).toMatchObject({ object: 'list', url: '/v1/events' });
  return res.json().data;
}

const ofType = (events: ApiEvent[], type: string) => events.filter((e) => e.type === type);
const one = (events: ApiEvent[], type: string) => {
  const found = ofType(events, type);
  expect(found, type).toHaveLength(1);
  return found[0];
};

// One of each lifecycle, made once; the tests read the events they left behind.
let manual: {
  id: string;
  authorized: Record<string, unknown>;
  captured: Record<string, unknown>;
  captureRequestId: string;
};
let refund: { id: string; body: Record<string, unknown> };
let declined: Record<string, unknown> & { id: string };
let canceled: { id: string; body: Record<string, unknown> };

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Events tenant');

  const auth = await post('/v1/payments', {
    amount: 4200,
    currency: 'eur',
    payment_method: card(TEST_CARDS.visa),
    confirm: true,
    capture_method: 'manual',
  });
  expect(auth.statusCode).toBe(200);
  const capture = await post(`/v1/payments/${auth.json().id}/capture`);
  expect(capture.statusCode).toBe(200);
  manual = {
    id: auth.json().id,
    authorized: auth.json(),
    captured: capture.json(),
    captureRequestId: String(capture.headers['request-id']),
  };

  const re = await post('/v1/refunds', { payment: manual.id, amount: 1000 });
  expect(re.statusCode).toBe(200);
  refund = { id: re.json().id, body: re.json() };

  const decline = await post('/v1/payments', {
    amount: 900,
    currency: 'usd',
    payment_method: card(TEST_CARDS.insufficientFunds),
    confirm: true,
  });
  expect(decline.statusCode).toBe(402);
  declined = decline.json().error.payment;

  const pending = await post('/v1/payments', { amount: 300, currency: 'usd', payment_method: card(TEST_CARDS.visa) });
  const cancel = await post(`/v1/payments/${pending.json().id}/cancel`, { cancellation_reason: 'abandoned' });
  expect(cancel.statusCode).toBe(200);
  canceled = { id: pending.json().id, body: cancel.json() };
});
afterAll(() => t.close());

describe('events written by state changes', () => {
  it('a manual-capture payment wrote payment.created, payment.requires_capture and payment.succeeded', async () => {
    const events = await listEvents(`?object_id=${manual.id}`);
    expect(events.map((e) => e.type).sort()).toEqual([
      'payment.created',
      'payment.requires_capture',
      'payment.succeeded',
    ]);
    for (const event of events) {
      expect(event).toMatchObject({ object: 'event', livemode: false });
      expect(event.id).toMatch(/^evt_/);
      expect(event.data.object.id).toBe(manual.id);
    }
  });

  it('each event carries the payment as it was at that moment', async () => {
    const events = await listEvents(`?object_id=${manual.id}`);
    expect(one(events, 'payment.created').data.object).toMatchObject({
      amount: 4200,
      currency: 'eur',
      amount_received: 0,
      amount_capturable: 0,
    });
    expect(one(events, 'payment.requires_capture').data.object).toEqual(asInEvents(manual.authorized));
    const succeeded = one(events, 'payment.succeeded');
    expect(succeeded.data.object).toEqual(asInEvents(manual.captured));
    expect(succeeded.data.object).toMatchObject({ status: 'succeeded', amount_received: 4200, amount_refunded: 0 });
    // The event names the request that caused it.
    expect(succeeded.request.id).toBe(manual.captureRequestId);
  });

  it('a refund wrote refund.created (pending) and refund.succeeded', async () => {
    const events = await listEvents(`?object_id=${refund.id}`);
    expect(events.map((e) => e.type).sort()).toEqual(['refund.created', 'refund.succeeded']);
    expect(one(events, 'refund.created').data.object).toMatchObject({
      id: refund.id,
      status: 'pending',
      amount: 1000,
      payment: manual.id,
    });
    expect(one(events, 'refund.succeeded').data.object).toEqual(refund.body);
  });

  it('a decline wrote payment.failed with the error', async () => {
    const events = await listEvents(`?object_id=${declined.id}`);
    expect(events.map((e) => e.type).sort()).toEqual(['payment.created', 'payment.failed']);
    const failed = one(events, 'payment.failed');
    expect(failed.data.object).toEqual(asInEvents(declined));
    expect(failed.data.object).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'insufficient_funds' },
    });
  });

  it('a cancel wrote payment.canceled', async () => {
    const events = await listEvents(`?object_id=${canceled.id}`);
    expect(events.map((e) => e.type).sort()).toEqual(['payment.canceled', 'payment.created']);
    expect(one(events, 'payment.created').data.object).toMatchObject({ status: 'requires_confirmation' });
    expect(one(events, 'payment.canceled').data.object).toEqual(asInEvents(canceled.body));
    expect(canceled.body).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
  });

  it('a rejected request writes no event', async () => {
    const before = await listEvents(`?object_id=${manual.id}`);
    expect((await post(`/v1/payments/${manual.id}/cancel`)).statusCode).toBe(400);
    expect((await post(`/v1/payments/${manual.id}/capture`)).statusCode).toBe(400);
    expect((await post('/v1/refunds', { payment: manual.id, amount: 999_999 })).statusCode).toBe(400);
    const after = await listEvents(`?object_id=${manual.id}`);
    expect(after).toEqual(before);
    const refunds = await listEvents('?type=refund.created');
    expect(refunds).toHaveLength(1);
  });
});

describe('GET /v1/events', () => {
  it('filters by exact type', async () => {
    const succeeded = await listEvents('?type=payment.succeeded');
    expect(succeeded.map((e) => e.data.object.id)).toEqual([manual.id]);
    const failed = await listEvents('?type=payment.failed');
    expect(failed.map((e) => e.data.object.id)).toEqual([declined.id]);
    const canceledEvents = await listEvents('?type=payment.canceled');
    expect(canceledEvents.map((e) => e.data.object.id)).toEqual([canceled.id]);
    const requiresCapture = await listEvents('?type=payment.requires_capture');
    expect(requiresCapture.map((e) => e.data.object.id)).toEqual([manual.id]);
    const created = await listEvents('?type=payment.created');
    expect(created.map((e) => e.data.object.id).sort()).toEqual([manual.id, declined.id, canceled.id].sort());
    expect(await listEvents('?type=payment')).toEqual([]);
  });

  it('filters by a type prefix such as payment.*', async () => {
    const payments = await listEvents('?type=payment.*&limit=100');
    expect(payments).toHaveLength(7);
    expect(payments.every((e) => e.type.startsWith('payment.'))).toBe(true);
    const refunds = await listEvents('?type=refund.*');
    expect(refunds.map((e) => e.type).sort()).toEqual(['refund.created', 'refund.succeeded']);
  });

  it('treats LIKE wildcards in a type prefix literally', async () => {
    expect(await listEvents('?type=' + encodeURIComponent('%.*'))).toEqual([]);
    expect(await listEvents('?type=' + encodeURIComponent('payment%.*'))).toEqual([]);
    expect(await listEvents('?type=' + encodeURIComponent('refun_.*'))).toEqual([]);
  });

  it('lists newest first with cursors', async () => {
    const all = await listEvents('?limit=100');
    expect(all).toHaveLength(9);
    const ids = all.map((e) => e.id);
    expect(ids).toEqual([...ids].sort().reverse());
    // Within one object's history, newest first is also causal order.
    const manualTypes = all.filter((e) => e.data.object.id === manual.id).map((e) => e.type);
    expect(manualTypes).toEqual(['payment.succeeded', 'payment.requires_capture', 'payment.created']);
    const refundTypes = all.filter((e) => e.data.object.id === refund.id).map((e) => e.type);
    expect(refundTypes).toEqual(['refund.succeeded', 'refund.created']);

    const first = (await get('/v1/events?limit=4')).json();
    expect(first.has_more).toBe(true);
    expect(first.data.map((e: ApiEvent) => e.id)).toEqual(ids.slice(0, 4));
    const second = (await get(`/v1/events?limit=4&starting_after=${ids[3]}`)).json();
    expect(second.data.map((e: ApiEvent) => e.id)).toEqual(ids.slice(4, 8));
    const back = (await get(`/v1/events?limit=2&ending_before=${ids[4]}`)).json();
    expect(back.data.map((e: ApiEvent) => e.id)).toEqual(ids.slice(2, 4));
  });

  it('combines type and object_id filters', async () => {
    const events = await listEvents(`?type=payment.*&object_id=${manual.id}`);
    expect(events).toHaveLength(3);
    expect(await listEvents(`?type=refund.*&object_id=${manual.id}`)).toEqual([]);
    expect(await listEvents('?object_id=pay_nothing')).toEqual([]);
  });

  it('rejects invalid query parameters', async () => {
    for (const query of ['?limit=0', '?limit=abc', '?colour=red', `?type=${'x'.repeat(101)}`]) {
      const res = await get(`/v1/events${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error.type).toBe('invalid_request_error');
    }
  });

  it('sees only its own tenant and mode', async () => {
    const other = await createTenant(t.app, 'Quiet tenant');
    const res = await call(t.app, other.testKey, 'GET', '/v1/events');
    expect(res.json().data).toEqual([]);
    const live = await call(t.app, tenant.liveKey, 'GET', '/v1/events');
    expect(live.json().data).toEqual([]);
  });
});

describe('GET /v1/events/{id}', () => {
  it('retrieves an event as listed', async () => {
    const [event] = await listEvents('?type=payment.succeeded');
    const res = await get(`/v1/events/${event.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(event);
  });

  it('answers 404 for an unknown event', async () => {
    const res = await get('/v1/events/evt_doesnotexist');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
  });
});

describe('transactional outbox (database level)', () => {
  it('every payment has exactly one event row per transition it went through', async () => {
    const rows = await t.admin<{ object_id: string; type: string; n: number }[]>`
      SELECT object_id, type, count(*)::int AS n FROM events
      WHERE tenant_id = ${tenant.id} AND object_id IN ${t.admin([manual.id, declined.id, canceled.id, refund.id])}
      GROUP BY object_id, type ORDER BY object_id, type`;
    const byObject = (id: string) =>
      Object.fromEntries(rows.filter((r) => r.object_id === id).map((r) => [r.type, r.n]));
    expect(byObject(manual.id)).toEqual({
      'payment.created': 1,
      'payment.requires_capture': 1,
      'payment.succeeded': 1,
    });
    expect(byObject(declined.id)).toEqual({ 'payment.created': 1, 'payment.failed': 1 });
    expect(byObject(canceled.id)).toEqual({ 'payment.created': 1, 'payment.canceled': 1 });
    expect(byObject(refund.id)).toEqual({ 'refund.created': 1, 'refund.succeeded': 1 });
  });

  it('the latest event of each payment matches the stored payment row', async () => {
    for (const id of [manual.id, declined.id, canceled.id]) {
      const [row] = await t.admin<
        {
          status: string;
          version: number;
          amount_received: number;
          last: { status: string; amount_received: number };
          transitions: number;
        }[]
      >`
        SELECT p.status, p.version, p.amount_received,
          (SELECT e.data->'object' FROM events e WHERE e.object_id = p.id ORDER BY e.id DESC LIMIT 1) AS last,
          (SELECT count(*)::int FROM events e WHERE e.object_id = p.id) AS transitions
        FROM payments p WHERE p.id = ${id}`;
      expect(row.last.status, id).toBe(row.status);
      expect(row.last.amount_received, id).toBe(row.amount_received);
      expect(row.transitions, id).toBeGreaterThanOrEqual(2);
    }
  });

  it('a payment with N transitions through the API has N event rows, written with its request ids', async () => {
    const created = await post('/v1/payments', { amount: 700, currency: 'usd' });
    const confirmedDecline = await post(`/v1/payments/${created.json().id}/confirm`, {
      payment_method: card(TEST_CARDS.declined),
    });
    expect(confirmedDecline.statusCode).toBe(402);
    const confirmed = await post(`/v1/payments/${created.json().id}/confirm`, {
      payment_method: card(TEST_CARDS.visa),
      return_url: 'https://x.example',
    });
    expect(confirmed.statusCode).toBe(200);
    const rows = await t.admin<{ type: string; request_id: string; status: string }[]>`
      SELECT type, request_id, data->'object'->>'status' AS status FROM events WHERE object_id = ${created.json().id} ORDER BY id`;
    expect(rows).toEqual([
      { type: 'payment.created', request_id: created.headers['request-id'], status: 'requires_payment_method' },
      { type: 'payment.failed', request_id: confirmedDecline.headers['request-id'], status: 'requires_payment_method' },
      { type: 'payment.succeeded', request_id: confirmed.headers['request-id'], status: 'succeeded' },
    ]);
  });
});
