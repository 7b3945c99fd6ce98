import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inScope } from '../../db/index.js';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

// Settlement runs act on every tenant of a database: a database of its own keeps other files out.
beforeAll(async () => {
  t = await bootAppOnOwnDatabase('bank_accounts');
  tenant = await createTenant(t.app, 'Bank accounts tenant');
});
afterAll(() => t.close());

const account = (extra: Record<string, unknown> = {}) => ({
  account_number: '000123456789',
  routing_number: '110000000',
  country: 'US',
  currency: 'usd',
  account_holder_name: 'Jenny Rosen',
  ...extra,
});
const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);

async function eventTypes(key: string, objectId: string) {
  const events = await ok(await call(t.app, key, 'GET', '/v1/events?limit=100'));
  return events.data
    .filter((e: { data: { object: { id: string } } }) => e.data.object.id === objectId)
    .map((e: { type: string }) => e.type)
    .reverse();
}

describe('/v1/bank_accounts', () => {
  it('registers an account, shows only its last 4 digits, and verifies it with the test micro-deposits', async () => {
    const owner = await createTenant(t.app, 'Bank happy path');
    const created = await ok(await post('/v1/bank_accounts', account({ metadata: { ref: 'main' } }), owner.testKey));
    expect(created).toMatchObject({
      object: 'bank_account',
      account_holder_name: 'Jenny Rosen',
      country: 'US',
      currency: 'usd',
      routing_number: '110000000',
      last4: '6789',
      status: 'new',
      default_for_currency: true,
      metadata: { ref: 'main' },
      livemode: false,
    });
    expect(created.id).toMatch(/^ba_/);
    expect(created.fingerprint).toMatch(/^[\w-]{16}$/);
    expect(JSON.stringify(created)).not.toContain('000123456789');

    const verified = await ok(
      await post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [45, 32] }, owner.testKey),
    );
    expect(verified).toMatchObject({ id: created.id, status: 'verified' });
    expect(await ok(await get(`/v1/bank_accounts/${created.id}`, owner.testKey))).toEqual(verified);
    const again = await post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [32, 45] }, owner.testKey);
    expect(again.statusCode).toBe(400);
    expect(again.json().error.code).toBe('bank_account_verified');

    // The same account registered twice has the same fingerprint; another account another.
    const twin = await ok(await post('/v1/bank_accounts', account(), owner.testKey));
    const otherNumber = await ok(
      await post('/v1/bank_accounts', account({ account_number: '000987654321' }), owner.testKey),
    );
    expect(twin.fingerprint).toBe(created.fingerprint);
    expect(otherNumber.fingerprint).not.toBe(created.fingerprint);
    expect(twin.default_for_currency).toBe(false);

    const listed = await ok(await get('/v1/bank_accounts?status=verified', owner.testKey));
    expect(listed).toMatchObject({ object: 'list', url: '/v1/bank_accounts', has_more: false });
    expect(listed.data.map((a: { id: string }) => a.id)).toEqual([created.id]);
    const all = await ok(await get('/v1/bank_accounts?limit=2', owner.testKey));
    expect(all.data.map((a: { id: string }) => a.id)).toEqual([otherNumber.id, twin.id]);
    expect(all.has_more).toBe(true);

    // Making another account the default takes it from the first; deleting hides it.
    const moved = await ok(await post(`/v1/bank_accounts/${twin.id}`, { default_for_currency: true }, owner.testKey));
    expect(moved.default_for_currency).toBe(true);
    expect((await ok(await get(`/v1/bank_accounts/${created.id}`, owner.testKey))).default_for_currency).toBe(false);
    const deleted = await ok(await call(t.app, owner.testKey, 'DELETE', `/v1/bank_accounts/${twin.id}`));
    expect(deleted).toEqual({ id: twin.id, object: 'bank_account', deleted: true });
    expect((await get(`/v1/bank_accounts/${twin.id}`, owner.testKey)).statusCode).toBe(404);
    expect((await call(t.app, owner.testKey, 'DELETE', `/v1/bank_accounts/${twin.id}`)).statusCode).toBe(404);

    expect(await eventTypes(owner.testKey, created.id)).toEqual(['bank_account.created', 'bank_account.verified']);
    expect(await eventTypes(owner.testKey, twin.id)).toEqual([
      'bank_account.created',
      'bank_account.updated',
      'bank_account.deleted',
    ]);
  });

  it('stores the account number sealed in the vault, never in plaintext', async () => {
    const created = await ok(await post('/v1/bank_accounts', account({ account_number: '000555444333' })));
    const [row] = await t.admin<Record<string, unknown>[]>`SELECT * FROM bank_accounts WHERE id = ${created.id}`;
    expect(row.last4).toBe('4333');
    for (const [column, value] of Object.entries(row)) {
      const text = Buffer.isBuffer(value) ? value.toString('latin1') : JSON.stringify(value);
      expect(text, column).not.toContain('000555444333');
    }
    const scope = { tenantId: tenant.id, livemode: false };
    const opened = await inScope(t.platform.sql, scope, (tx) =>
      t.platform.bankAccounts.accountNumber(tx, scope, created.id),
    );
    expect(opened).toBe('000555444333');
  });

  it('counts wrong micro-deposit amounts and refuses the account for good after three', async () => {
    const created = await ok(await post('/v1/bank_accounts', account()));
    for (const left of [2, 1]) {
      const wrong = await post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [32, 44] });
      expect(wrong.statusCode).toBe(400);
      expect(wrong.json().error).toMatchObject({ code: 'bank_account_verification_failed', param: 'amounts' });
      expect(wrong.json().error.message).toContain(`${left} attempt(s) left`);
      expect((await ok(await get(`/v1/bank_accounts/${created.id}`))).status).toBe('new');
    }
    const third = await post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [1, 2] });
    expect(third.json().error.message).toContain('can no longer be verified');
    expect((await ok(await get(`/v1/bank_accounts/${created.id}`))).status).toBe('verification_failed');
    const tooLate = await post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [32, 45] });
    expect(tooLate.statusCode).toBe(400);
    expect(tooLate.json().error.code).toBe('bank_account_verification_failed');
    expect((await ok(await get(`/v1/bank_accounts/${created.id}`))).status).toBe('verification_failed');
    expect(await eventTypes(tenant.testKey, created.id)).toEqual([
      'bank_account.created',
      'bank_account.verification_failed',
    ]);
  });

  it('counts concurrent wrong guesses one by one: never more than three', async () => {
    const created = await ok(await post('/v1/bank_accounts', account()));
    const guesses = await Promise.all(
      Array.from({ length: 8 }, (_, i) => post(`/v1/bank_accounts/${created.id}/verify`, { amounts: [1, 2 + i] })),
    );
    expect(guesses.every((r) => r.statusCode === 400)).toBe(true);
    const [row] = await t.admin<{ verification_attempts: number; status: string }[]>`
      SELECT verification_attempts, status FROM bank_accounts WHERE id = ${created.id}`;
    expect(row).toEqual({ verification_attempts: 3, status: 'verification_failed' });
  });

  it('refuses bad input with 400 naming the parameter', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [account({ account_number: '12' }), 'account_number'],
      [account({ account_number: '0001234x6789' }), 'account_number'],
      [account({ routing_number: '110000001' }), 'routing_number'],
      [account({ routing_number: '11000000' }), 'routing_number'],
      [account({ country: 'usa' }), 'country'],
      [account({ currency: 'xyz' }), 'currency'],
      [account({ surprise: true }), 'surprise'],
      [{ routing_number: '110000000', country: 'US', currency: 'usd' }, 'account_number'],
    ];
    for (const [body, param] of cases) {
      const response = await post('/v1/bank_accounts', body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param });
      expect(response.body).not.toContain('0001234x6789');
    }
    const created = await ok(await post('/v1/bank_accounts', account()));
    for (const body of [
      {},
      { amounts: [32] },
      { amounts: [32, 45, 1] },
      { amounts: [0, 45] },
      { amounts: ['32', 45] },
    ]) {
      const response = await post(`/v1/bank_accounts/${created.id}/verify`, body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.json().error.type).toBe('invalid_request_error');
    }
    expect((await ok(await get(`/v1/bank_accounts/${created.id}`))).status).toBe('new');
    expect((await post(`/v1/bank_accounts/${created.id}`, { default_for_currency: false })).statusCode).toBe(400);
    expect((await get('/v1/bank_accounts/ba_missing')).statusCode).toBe(404);
    expect((await get('/v1/bank_accounts?status=closed')).statusCode).toBe(400);
  });

  it('needs its own scopes: a key that may create payouts cannot register where they go', async () => {
    const payoutsOnly = await ok(await post('/v1/api_keys', { scopes: ['payouts:write'] }));
    const denied = await post('/v1/bank_accounts', account(), payoutsOnly.secret);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe('missing_scope');
    const reader = await ok(await post('/v1/api_keys', { scopes: ['bank_accounts:read'] }));
    expect((await get('/v1/bank_accounts', reader.secret)).statusCode).toBe(200);
    expect((await post('/v1/bank_accounts', account(), reader.secret)).statusCode).toBe(403);
    const writer = await ok(await post('/v1/api_keys', { scopes: ['bank_accounts:write'] }));
    expect((await post('/v1/bank_accounts', account(), writer.secret)).statusCode).toBe(200);
  });

  it('automatic payouts go to the verified default account; without one the funds stay available', async () => {
    const owner = await createTenant(t.app, 'Automatic payouts');
    await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${owner.id}`, {
        settlement_schedule: { type: 'daily', delay_days: 0, automatic_payouts: true },
      }),
    );
    const pay = async () =>
      ok(
        await call(t.app, owner.testKey, 'POST', '/v1/payments', {
          amount: 3_000,
          currency: 'usd',
          payment_method: card(TEST_CARDS.visa),
          confirm: true,
        }),
      );
    const first = await pay();
    const unverified = await ok(await post('/v1/bank_accounts', account(), owner.testKey));
    await t.platform.settlements.run();
    const balance = await ok(await get('/v1/balance', owner.testKey));
    const usd = (list: { currency: string; amount: number }[]) => list.find((f) => f.currency === 'usd')?.amount;
    expect(usd(balance.available)).toBe(3_000 - first.fee);
    expect((await ok(await get('/v1/payouts', owner.testKey))).data).toEqual([]);

    await ok(await post(`/v1/bank_accounts/${unverified.id}/verify`, { amounts: [32, 45] }, owner.testKey));
    const second = await pay();
    await t.platform.settlements.run();
    const payouts = (await ok(await get('/v1/payouts', owner.testKey))).data;
    expect(payouts).toHaveLength(1);
    expect(payouts[0]).toMatchObject({
      automatic: true,
      destination: unverified.id,
      amount: 6_000 - first.fee - second.fee,
    });
  });
});
