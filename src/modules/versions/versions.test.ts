import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { API_VERSION_NAMES, convertVersion, LATEST_API_VERSION } from './versions.js';

const FIRST = '2026-11-01';
let t: TestApp;

beforeAll(async () => {
  t = await bootApp();
});
afterAll(() => t?.close());

async function tenantOn(name: string, apiVersion?: string): Promise<TestTenant & { apiVersion: string }> {
  const tenant = await ok(
    await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', {
      name,
      ...(apiVersion ? { api_version: apiVersion } : {}),
    }),
  );
  return {
    id: tenant.id,
    testKey: tenant.secret_keys.test.secret,
    liveKey: tenant.secret_keys.live.secret,
    testKeyId: tenant.secret_keys.test.id,
    liveKeyId: tenant.secret_keys.live.id,
    apiVersion: tenant.api_version,
  };
}

const get = (tenant: TestTenant, url: string, version?: string) =>
  call(t.app, tenant.testKey, 'GET', url, undefined, version ? { 'payforward-version': version } : {});

/** A payment, then the settlement run on its due day: a settlement and its balance.available event. */
async function settled(tenant: TestTenant) {
  const payment = await ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 4_000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    }),
  );
  const txn = await ok(await get(tenant, `/v1/balance_transactions/${payment.balance_transaction}`));
  await t.platform.settlements.run(new Date(txn.available_on * 1000));
  return { day: new Date(txn.available_on * 1000).toISOString().slice(0, 10), seconds: txn.available_on };
}

describe('API versions', () => {
  it('publishes the changelog, newest first, without a key', async () => {
    const list = await ok(await t.app.inject({ method: 'GET', url: '/v1/api_versions' }));
    expect(list.data.map((v: { id: string }) => v.id)).toEqual([...API_VERSION_NAMES].reverse());
    expect(list.data[0]).toMatchObject({ id: LATEST_API_VERSION, latest: true });
    expect(list.data[0].changes.join(' ')).toContain('settlement_date');
    expect(list.data.at(-1)).toMatchObject({ id: FIRST, latest: false, changes: [] });
  });

  it('pins a new tenant to the latest version and states the version on every response', async () => {
    const tenant = await tenantOn('Latest shop');
    expect(tenant.apiVersion).toBe(LATEST_API_VERSION);
    const res = await get(tenant, '/v1/payments');
    expect(res.statusCode).toBe(200);
    expect(res.headers['payforward-version']).toBe(LATEST_API_VERSION);
    const older = await get(tenant, '/v1/payments', FIRST);
    expect(older.headers['payforward-version']).toBe(FIRST);
  });

  it('answers the latest shape in dates as Unix seconds, and the older shape to a tenant pinned to it', async () => {
    const latest = await tenantOn('Seconds shop');
    const pinned = await tenantOn('Strings shop', FIRST);
    expect(pinned.apiVersion).toBe(FIRST);
    const { day, seconds } = await settled(latest);
    await settled(pinned);

    const [newShape] = (await ok(await get(latest, '/v1/settlements'))).data;
    expect(newShape.settlement_date).toBe(seconds);
    const [oldShape] = (await ok(await get(pinned, '/v1/settlements'))).data;
    expect(oldShape.settlement_date).toBe(day);
    // A request may ask for either version whatever the pin.
    expect((await ok(await get(latest, `/v1/settlements/${newShape.id}`, FIRST))).settlement_date).toBe(day);
    expect((await ok(await get(pinned, `/v1/settlements/${oldShape.id}`, LATEST_API_VERSION))).settlement_date).toBe(
      seconds,
    );

    // Events: the object inside is shown in the caller's version, and the event says which.
    const [oldEvent] = (await ok(await get(pinned, '/v1/events?type=balance.available'))).data;
    expect(oldEvent).toMatchObject({ api_version: FIRST, data: { object: { settlement_date: day } } });
    const [newEvent] = (await ok(await get(latest, '/v1/events?type=balance.available'))).data;
    expect(newEvent).toMatchObject({ api_version: LATEST_API_VERSION, data: { object: { settlement_date: seconds } } });
  });

  it('shows an event stored before the change in the version asked for', async () => {
    const tenant = await tenantOn('Old events shop');
    const { day, seconds } = await settled(tenant);
    const [event] = (await ok(await get(tenant, '/v1/events?type=balance.available'))).data;
    // As an event written before 2026-12-01 was stored: its object in the old shape, tagged with the old version.
    await t.admin`
      UPDATE events SET api_version = ${FIRST},
        data = jsonb_set(data::jsonb, '{object,settlement_date}', to_jsonb(${day}::text))::json
      WHERE id = ${event.id}`;
    expect((await ok(await get(tenant, `/v1/events/${event.id}`))).data.object.settlement_date).toBe(seconds);
    expect((await ok(await get(tenant, `/v1/events/${event.id}`, FIRST))).data.object.settlement_date).toBe(day);
  });

  it("follows the operator's change of a tenant's pinned version", async () => {
    const tenant = await tenantOn('Upgrading shop', FIRST);
    expect((await get(tenant, '/v1/payments')).headers['payforward-version']).toBe(FIRST);
    const updated = await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, { api_version: LATEST_API_VERSION }),
    );
    expect(updated.api_version).toBe(LATEST_API_VERSION);
    expect((await get(tenant, '/v1/payments')).headers['payforward-version']).toBe(LATEST_API_VERSION);
  });

  it('refuses an unknown version with a 400 naming the header', async () => {
    const tenant = await tenantOn('Typo shop');
    for (const version of ['2020-01-01', 'latest', '2026-12-01; drop table', '']) {
      const res = await get(tenant, '/v1/payments', version || ' ');
      expect(res.statusCode, version).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'api_version_invalid', param: 'PayForward-Version' });
    }
    const bad = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'x', api_version: '1999-01-01' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.param).toBe('api_version');
  });
});

describe('convertVersion', () => {
  const settlement = { id: 'st_1', object: 'settlement', settlement_date: 1_764_374_400, gross: 5 };

  it('converts objects at any depth, leaves other objects alone and never changes its input', () => {
    const list = { object: 'list', data: [settlement, { id: 'po_1', object: 'payout', arrival_date: 1_764_374_400 }] };
    const before = structuredClone(list);
    const old = convertVersion(list, LATEST_API_VERSION, FIRST);
    expect(list).toEqual(before);
    expect(old.data[0]).toEqual({ ...settlement, settlement_date: '2025-11-29' });
    expect(old.data[1]).toEqual(list.data[1]);
    expect(convertVersion(old, FIRST, LATEST_API_VERSION)).toEqual(list);
    expect(convertVersion(list, LATEST_API_VERSION, LATEST_API_VERSION)).toBe(list);
  });

  it('restates the version of an event it converts', () => {
    const event = { object: 'event', api_version: LATEST_API_VERSION, data: { object: settlement } };
    expect(convertVersion(event, LATEST_API_VERSION, FIRST)).toMatchObject({
      api_version: FIRST,
      data: { object: { settlement_date: '2025-11-29' } },
    });
  });
});
