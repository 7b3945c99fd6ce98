import { parse } from 'csv-parse/sync';
import { foldAnalyticsLogs } from './service.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  createTenant,
  expectError,
  ok,
  payByCard,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

const get = async (tenant: TestTenant | string, url: string) =>
  ok(await call(t.app, typeof tenant === 'string' ? tenant : tenant.testKey, 'GET', url));

/** Every payment of the tenant's test mode, through the list API. */
async function listed(tenant: TestTenant, resource: string) {
  const all: any[] = [];
  let after = '';
  for (;;) {
    const page = await get(tenant, `/v1/${resource}?limit=100${after}`);
    all.push(...page.data);
    if (!page.has_more) return all;
    after = `&starting_after=${page.data.at(-1).id}`;
  }
}

const approved = (p: any) => p.status === 'succeeded' || p.status === 'requires_capture';
const declined = (p: any) => p.status === 'requires_payment_method' && p.last_payment_error !== null;

beforeAll(async () => {
  // A database of its own: the fold is global, and another file's payments in the shared database would give the
  // fold below something to move (and its vacuum counts a second writer).
  t = await bootAppOnOwnDatabase('analytics');
  a = await createTenant(t.app, 'Analytics A');
  b = await createTenant(t.app, 'Analytics B');
  const pay = (amount: number, extra: Record<string, unknown> = {}, number?: string) =>
    call(t.app, a.testKey, 'POST', '/v1/payments', {
      amount,
      currency: 'usd',
      payment_method: { type: 'card', card: { number, exp_month: 12, exp_year: 2040, cvc: '123' } },
      confirm: true,
      ...extra,
    });
  await payByCard(t.app, a.testKey, 1_000);
  await payByCard(t.app, a.testKey, 2_500, { currency: 'eur' });
  await payByCard(t.app, a.testKey, 4_000, { capture_method: 'manual' });
  const refunded = await payByCard(t.app, a.testKey, 3_000);
  await ok(await call(t.app, a.testKey, 'POST', '/v1/refunds', { payment: refunded.id, amount: 1_200 }));
  await pay(1_500, {}, TEST_CARDS.declined);
  await pay(1_600, {}, TEST_CARDS.insufficientFunds);
  await payByCard(t.app, a.testKey, 700, {}, TEST_CARDS.debit);
  await payByCard(t.app, b.testKey, 99_900);
});
afterAll(() => t.close());

describe('tenant analytics', () => {
  it('summary figures equal the tenant’s own payments and refunds', async () => {
    const summary = await get(a, '/v1/analytics/summary?range=today&compare=previous');
    const payments = (await listed(a, 'payments')).filter(
      (p) => p.created >= summary.from && p.created < summary.until,
    );
    const refunds = (await listed(a, 'refunds')).filter((r) => r.status === 'succeeded');
    for (const currency of ['eur', 'usd']) {
      const mine = payments.filter((p) => p.currency === currency);
      const figures = summary.data.find((f: any) => f.currency === currency);
      const ok = mine.filter(approved).length;
      const no = mine.filter(declined).length;
      expect(figures).toMatchObject({
        count: mine.length,
        amount: mine.reduce((s, p) => s + p.amount, 0),
        approved_count: ok,
        declined_count: no,
        approval_rate_bps: Math.round((ok * 10_000) / (ok + no)),
        volume: mine.reduce((s, p) => s + p.amount_received, 0),
        refunds_count: refunds.filter((r) => r.currency === currency).length,
        refunds_amount: refunds.filter((r) => r.currency === currency).reduce((s, r) => s + r.amount, 0),
      });
      expect(figures.net).toBe(figures.volume - figures.fees - figures.refunds_amount - figures.disputes_lost_amount);
    }
    expect(summary.decline_reasons.reduce((s: number, r: any) => s + r.count, 0)).toBe(
      payments.filter(declined).length,
    );
    expect(summary.previous.data).toEqual([]);
  });

  it('time series and breakdowns add up to the summary', async () => {
    const summary = await get(a, '/v1/analytics/summary?range=7d&currency=usd');
    const usd = summary.data[0];
    const series = await get(a, '/v1/analytics/timeseries?range=7d&metric=volume&currency=usd&interval=hour');
    expect(series.data).toHaveLength(7 * 24);
    expect(series.data.reduce((s: number, p: any) => s + p.value, 0)).toBe(usd.volume);
    const counts = await get(a, '/v1/analytics/timeseries?range=7d&metric=count');
    expect(counts.data.reduce((s: number, p: any) => s + p.value, 0)).toBe(
      summary.data[0].count + (await get(a, '/v1/analytics/summary?range=7d&currency=eur')).data[0].count,
    );
    for (const dimension of ['brand', 'country']) {
      const breakdown = await get(a, `/v1/analytics/breakdown?range=7d&currency=usd&dimension=${dimension}`);
      expect(breakdown.data.reduce((s: number, r: any) => s + r.count, 0)).toBe(usd.count);
      expect(breakdown.data.reduce((s: number, r: any) => s + r.volume, 0)).toBe(usd.volume);
    }
    const brands = await get(a, '/v1/analytics/breakdown?range=7d&dimension=brand');
    expect(brands.data.map((r: any) => r.value)).toContain('visa');
    const currencies = await get(a, '/v1/analytics/breakdown?range=7d&dimension=currency');
    expect(currencies.data.map((r: any) => r.value).sort()).toEqual(['eur', 'usd']);
  });

  it('reads a whole day the same before the fold, after it, and after the compaction folds it into the daily rollups', async () => {
    // A period of whole UTC days ending tomorrow: today is read as a day (its daily row plus its hourly rows not
    // compacted yet), not hour by hour.
    const DAY = 86_400;
    const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
    const days = `from=${today - DAY}&until=${today + DAY}`;
    const read = async () => ({
      summary: (await get(a, `/v1/analytics/summary?${days}`)).data,
      series: (await get(a, `/v1/analytics/timeseries?${days}&metric=count&interval=day`)).data,
      brands: (await get(a, `/v1/analytics/breakdown?${days}&dimension=brand`)).data,
    });
    const byHours = await get(a, '/v1/analytics/summary?range=today');
    const uncompacted = await read();
    expect(uncompacted.summary).toEqual(byHours.data);
    const count = byHours.data.reduce((sum: number, f: { count: number }) => sum + f.count, 0);
    expect(count).toBeGreaterThan(0);
    expect(uncompacted.series).toEqual([
      { start: today - DAY, value: 0 },
      { start: today, value: count },
    ]);
    // The fold deleted what it moved; the worker vacuums both logs (it owns them), where autovacuum may not come by.
    const vacuums = async () =>
      t.admin<{ relname: string; vacuum_count: number }[]>`
        SELECT relname, vacuum_count::int FROM pg_stat_user_tables
        WHERE relname IN ('analytics_payment_changes', 'analytics_attempt_changes') ORDER BY relname`;
    const before = await vacuums();
    expect(before).toHaveLength(2);
    expect(await foldAnalyticsLogs(t.platform.workerSql)).toBeGreaterThan(0);
    expect(await read()).toEqual(uncompacted);
    expect(await vacuums()).toEqual(before.map((table) => ({ ...table, vacuum_count: table.vacuum_count + 1 })));
    // With nothing folded, nothing to vacuum.
    expect(await foldAnalyticsLogs(t.platform.workerSql)).toBe(0);
    expect((await vacuums()).map((table) => table.vacuum_count)).toEqual(before.map((table) => table.vacuum_count + 1));
    const [{ folded }] = await t.platform.workerSql<{ folded: number }[]>`
      SELECT worker_compact_analytics(now() + interval '1 hour') AS folded`;
    expect(folded).toBeGreaterThan(0);
    const [{ rows }] = await t.admin<{ rows: number }[]>`
      SELECT count(*)::int AS rows FROM analytics_daily WHERE tenant_id = ${a.id} AND slot = 0`;
    expect(rows).toBeGreaterThan(0);
    expect(await read()).toEqual(uncompacted);
  });

  it('downloads the same numbers as CSV', async () => {
    // The last seven days to the next whole hour, named: `range=7d` ends at whatever hour the request comes in, and
    // from 23:00 UTC its days start at midnight, one point fewer.
    const until = Math.ceil(Date.now() / 3_600_000) * 3_600;
    const period = `from=${until - 7 * 86_400}&until=${until}`;
    const days = Math.ceil((until - Math.floor((until - 7 * 86_400) / 86_400) * 86_400) / 86_400);
    const summary = await get(a, `/v1/analytics/summary?${period}`);
    const response = await call(t.app, a.testKey, 'GET', `/v1/analytics/summary.csv?${period}`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/csv/);
    const rows = parse(response.body, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => [r.currency, Number(r.count), Number(r.volume)])).toEqual(
      summary.data.map((f: any) => [f.currency, f.count, f.volume]),
    );
    const series = await call(t.app, a.testKey, 'GET', `/v1/analytics/timeseries.csv?${period}&metric=count`);
    const points = parse(series.body, { columns: true }) as Record<string, string>[];
    expect(points).toHaveLength(days);
    expect(points.reduce((s, p) => s + Number(p.count), 0)).toBe(
      summary.data.reduce((s: number, f: any) => s + f.count, 0),
    );
  });

  it('another tenant sees only its own figures, and the other mode none', async () => {
    const summary = await get(b, '/v1/analytics/summary?range=today');
    expect(summary.data).toHaveLength(1);
    expect(summary.data[0]).toMatchObject({ currency: 'usd', count: 1, amount: 99_900 });
    const live = await get(a.liveKey, '/v1/analytics/summary?range=today');
    expect(live.data).toEqual([]);
  });

  it('refuses bad input with 400 and our error object', async () => {
    const bad = async (url: string, param: string) =>
      expectError(await call(t.app, a.testKey, 'GET', url), 400, { type: 'invalid_request_error', param });
    await bad('/v1/analytics/summary?from=1700003600&until=1700000000', 'until');
    await bad('/v1/analytics/timeseries?metric=count&interval=hour&range=12m', 'interval');
    await bad('/v1/analytics/timeseries?metric=nonsense', 'metric');
    await bad('/v1/analytics/timeseries?metric=volume', 'currency');
    await bad('/v1/analytics/breakdown?dimension=colour', 'dimension');
    await bad('/v1/analytics/summary?until=1700000000', 'from');
    await bad('/v1/analytics/summary?from=0&until=1700000000', 'from');
    await bad('/v1/analytics/summary?range=forever', 'range');
  });

  it('needs the analytics scope', async () => {
    const restricted = await ok(
      await call(t.app, a.testKey, 'POST', '/v1/api_keys', { name: 'no analytics', scopes: ['payments:read'] }),
    );
    expectError(await call(t.app, restricted.secret, 'GET', '/v1/analytics/summary'), 403, {});
    const reader = await ok(
      await call(t.app, a.testKey, 'POST', '/v1/api_keys', { name: 'analytics', scopes: ['analytics:read'] }),
    );
    await get(reader.secret, '/v1/analytics/summary');
  });
});

describe('operator analytics', () => {
  it('shows every tenant together and refuses tenant keys', async () => {
    const volume = await get(PLATFORM_KEY, '/v1/analytics/platform/volume?range=today&interval=hour&currency=usd');
    const mine = (await get(a, '/v1/analytics/summary?range=today&currency=usd')).data[0];
    const theirs = (await get(b, '/v1/analytics/summary?range=today&currency=usd')).data[0];
    const total = volume.data.reduce((s: number, p: any) => s + p.count, 0);
    expect(total).toBeGreaterThanOrEqual(mine.count + theirs.count);
    const health = await get(PLATFORM_KEY, '/v1/analytics/platform/processors?range=today');
    expect(health.data.reduce((s: number, p: any) => s + p.attempts, 0)).toBeGreaterThan(0);
    const backlog = await get(PLATFORM_KEY, '/v1/analytics/platform/review_backlog');
    expect(backlog.open_reviews).toBeGreaterThanOrEqual(0);
    for (const url of [
      '/v1/analytics/platform/volume',
      '/v1/analytics/platform/processors',
      '/v1/analytics/platform/review_backlog',
      '/v1/analytics/platform/volume.csv',
    ])
      expect((await call(t.app, a.testKey, 'GET', url)).statusCode).toBe(403);
  });
});
