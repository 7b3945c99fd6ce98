import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnOwnDatabase, type TestApp } from './helpers.js';
import {
  freePort,
  productionSecrets,
  waitFor,
  runUntilExit,
  startServer,
  stopServer,
  type ServerProcess,
} from './process.js';

const DAY_MS = 86_400_000;

// The server's workers and the seeder's nightly passes act on every tenant: a database of its own.
describe('seeding the demo tenant', () => {
  let t: TestApp;
  let dataDir: string;
  let env: Record<string, string>;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('demo_start');
    dataDir = mkdtempSync(join(tmpdir(), 'payforward-demo-'));
    // No secrets in the environment: generated into the data folder, as on a first `npm start`.
    env = {
      DATABASE_URL: t.adminUrl,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SEED_DEMO_TENANT: 'true',
      DEMO_SEED_DAYS: '2',
    };
  }, 120_000);
  afterAll(async () => {
    for (const server of servers) await stopServer(server);
    await t?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const demoTenant = () =>
    (
      JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as {
        demo: { tenantId: string; seededAt?: string };
      }
    ).demo;
  const payments = async (tenantId: string) =>
    (await t.admin<{ count: number }[]>`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenantId}`)[0]!
      .count;

  it('seeds the demo tenant on the first start, and not again on the next', async () => {
    const first = await startServer('start', { ...env, PORT: String(await freePort()) });
    servers.push(first);
    expect(first.output()).toMatch(/Demo tenant seeded: 2 days: \d+ payments/);
    const demo = demoTenant();
    expect(demo.seededAt).toBeDefined();
    const seeded = await payments(demo.tenantId);
    expect(seeded).toBeGreaterThan(50);
    await stopServer(first, 'SIGTERM');

    const second = await startServer('start', { ...env, PORT: String(await freePort()) });
    servers.push(second);
    // The start's summary is printed after the server answers: wait for it.
    await waitFor(() => second.output().includes(`Demo tenant:        ${demo.tenantId}`), 30_000, 'the summary');
    expect(second.output()).not.toContain('Seeding');
    expect(await payments(demo.tenantId)).toBe(seeded);
    // Its workers would act on the history at today's date: seed-demo waits for them to stop.
    await waitFor(
      async () => {
        const [{ count }] = await t.admin<{ count: number }[]>`SELECT count(*)::int AS count FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'payforward-worker'`;
        return count > 0;
      },
      30_000,
      'a worker connection',
    );
    const refused = await runUntilExit('seed-demo', env, 60_000, ['--days', '1']);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('seed-demo needs the workers stopped');
    expect(await payments(demo.tenantId)).toBe(seeded);
    await stopServer(second, 'SIGTERM');
  }, 300_000);

  it('adds N days with seed-demo, the same payments for the same seed', async () => {
    // A window of its own, well before the first start's two days.
    const until = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - 10 * DAY_MS + 15 * 3_600_000);
    const args = ['--days', '2', '--seed', '5', '--until', until.toISOString()];
    const window = async (tenantId: string) =>
      t.admin<{ created_at: Date; amount: number; currency: string; copies: number }[]>`
        SELECT created_at, amount, currency, count(*)::int AS copies FROM payments
        WHERE tenant_id = ${tenantId} AND created_at > ${new Date(until.getTime() - 3 * DAY_MS)} AND created_at <= ${until}
        GROUP BY 1, 2, 3 ORDER BY 1, 2`;

    const once = await runUntilExit('seed-demo', env, 180_000, args);
    expect(once.code, once.output).toBe(0);
    expect(once.output).toMatch(/Seeded 2 days: \d+ payments/);
    const { tenantId } = demoTenant();
    const first = await window(tenantId);
    expect(first.length).toBeGreaterThan(50);
    expect(first.every((p) => p.copies === 1)).toBe(true);

    const twice = await runUntilExit('seed-demo', env, 180_000, args);
    expect(twice.code, twice.output).toBe(0);
    expect(await window(tenantId)).toEqual(first.map((p) => ({ ...p, copies: 2 })));
  }, 400_000);

  it('refuses to seed with NODE_ENV=production, and refuses a bad --days', async () => {
    const production = await runUntilExit('seed-demo', { ...env, ...productionSecrets() }, 60_000);
    expect(production.code).toBe(1);
    expect(production.output).toContain('seed-demo refuses to run with NODE_ENV=production');
    const bad = await runUntilExit('seed-demo', env, 60_000, ['--days', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--days must be a whole number');
  }, 150_000);
});
