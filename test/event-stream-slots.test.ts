import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiServerEnv, bootApp, createTenant, type TestApp } from './helpers.js';
import { startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { serviceUrl } from './services.js';
import { SseClient } from './sse-client.js';

// The bound on event streams per tenant across API processes, in both of its stores: Redis when
// REDIS_URL is set, PostgreSQL otherwise. Leases are short here, so renewal and the expiry of a
// killed process's leases show within seconds.

const LEASE_MS = 900;
const SETTINGS = { EVENT_STREAM_MAX_PER_TENANT: '2', EVENT_STREAM_LEASE_MS: String(LEASE_MS) };
// Without Redis (a developer's bare machine) its half is skipped; under CI serviceUrl throws instead.
const redisUrl = serviceUrl('REDIS_URL');

describe.each([...(redisUrl ? [['Redis', true] as const] : []), ['PostgreSQL', false] as const])(
  'event stream slots in %s',
  (_store, withRedis) => {
    const env = { ...SETTINGS, ...(withRedis ? { REDIS_URL: redisUrl! } : {}) };
    const dataDir = mkdtempSync(join(tmpdir(), 'payforward-stream-slots-'));
    const apps: TestApp[] = [];
    const urls: string[] = [];
    const clients: SseClient[] = [];
    let server: ServerProcess | undefined;
    let redis: Redis | undefined;

    beforeAll(async () => {
      if (withRedis) redis = new Redis(redisUrl!);
      for (let i = 0; i < 2; i++) {
        const app = await bootApp(env);
        apps.push(app);
        urls.push(await app.app.listen({ port: 0, host: '127.0.0.1' }));
      }
    }, 120_000);

    afterAll(async () => {
      for (const client of clients) client.close();
      await stopServer(server);
      for (const app of apps) {
        app.app.server.closeAllConnections();
        await app.close();
      }
      redis?.disconnect();
      rmSync(dataDir, { recursive: true, force: true });
    });

    async function open(baseUrl: string, key: string) {
      const client = await SseClient.open(baseUrl, key);
      clients.push(client);
      return client;
    }

    /** The store's clock and the expiry of each of the tenant's leases, in milliseconds. */
    async function leases(tenantId: string): Promise<{ now: number; expiries: number[] }> {
      if (redis) {
        const [seconds, micros] = await redis.time();
        const scored = await redis.zrange(`event_stream_slots:{${tenantId}}`, 0, -1, 'WITHSCORES');
        return {
          now: Number(seconds) * 1000 + Math.floor(Number(micros) / 1000),
          expiries: scored.filter((_, i) => i % 2 === 1).map(Number),
        };
      }
      const rows = await apps[0].admin<{ now: Date; expires_at: Date | null }[]>`
      SELECT now() AS now, l.expires_at FROM (SELECT 1) one
      LEFT JOIN event_stream_leases l ON l.tenant_id = ${tenantId}`;
      return {
        now: rows[0].now.getTime(),
        expiries: rows.filter((r) => r.expires_at).map((r) => r.expires_at!.getTime()),
      };
    }

    it('counts the streams of both app instances together, and renews the leases of open streams', async () => {
      const tenant = await createTenant(apps[0].app, 'Slots tenant');
      expect((await open(urls[0], tenant.testKey)).response.status).toBe(200);
      expect((await open(urls[1], tenant.liveKey)).response.status).toBe(200);
      const first = await leases(tenant.id);
      expect(first.expiries).toHaveLength(2);
      for (const url of urls) {
        const refused = await open(url, tenant.testKey);
        expect(refused.response.status).toBe(429);
        expect((await refused.response.json()).error.code).toBe('too_many_streams');
      }
      // Past the first leases' expiry, the open streams still hold their slots: their process renewed them.
      const later = await waitFor(
        async () => {
          const now = await leases(tenant.id);
          return now.now > Math.max(...first.expiries) && now;
        },
        20_000,
        'the first leases to have run out unless renewed',
      );
      expect(later.expiries).toHaveLength(2);
      expect(Math.min(...later.expiries)).toBeGreaterThan(later.now);
      expect((await open(urls[1], tenant.testKey)).response.status).toBe(429);
      const other = await createTenant(apps[0].app, 'Slots, other tenant');
      expect((await open(urls[1], other.testKey)).response.status).toBe(200);
    });

    it("frees a killed process's slots once their leases run out", async () => {
      const tenant = await createTenant(apps[0].app, 'Slots crash tenant');
      server = await startServer('api', { ...env, ...(await apiServerEnv(apps[0].adminUrl, dataDir)) });
      for (let i = 0; i < 2; i++) expect((await open(server.baseUrl, tenant.testKey)).response.status).toBe(200);
      expect((await open(urls[0], tenant.testKey)).response.status).toBe(429);
      await stopServer(server, 'SIGKILL');
      const reopened = await waitFor(
        async () => {
          const client = await open(urls[0], tenant.testKey);
          return client.response.status === 200 && client;
        },
        20_000,
        "the killed process's leases to run out",
      );
      expect(reopened.response.status).toBe(200);
      // The killed process's leases are never renewed: soon the reopened stream's is the only one alive.
      await waitFor(
        async () => {
          const now = await leases(tenant.id);
          return now.expiries.filter((expiry) => expiry > now.now).length === 1;
        },
        20_000,
        'only the reopened lease alive',
      );
    }, 120_000);
  },
);
