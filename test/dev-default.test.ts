import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort, startServer, stopServer, type ServerProcess } from './process.js';

// The one-command development default: no secret in the environment, every one generated into
// DATA_DIR/secrets.json, the metrics token included, so /metrics on the API port can be scraped.

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-dev-default-'));
const secretsFile = join(dataDir, 'secrets.json');
let server: ServerProcess | undefined;

afterAll(async () => {
  await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
});

async function start() {
  server = await startServer('api', {
    DATABASE_URL: inject('adminDatabaseUrl'),
    PORT: String(await freePort()),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    // The demo tenant would land in the run's shared database; it plays no part here.
    SEED_DEMO_TENANT: 'false',
  });
  return server;
}

const scrape = (baseUrl: string, token?: string) =>
  fetch(`${baseUrl}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

async function expectRefused(response: Response) {
  expect(response.status).toBe(401);
  const { error } = await response.json();
  expect(error.code).toBe('invalid_metrics_token');
  expect(error.request_id).toBe(response.headers.get('request-id'));
}

describe('the development default without METRICS_TOKEN', () => {
  it('generates a metrics token into secrets.json that opens /metrics, prints how to scrape, and still refuses others', async () => {
    const first = await start();
    const { metricsToken } = JSON.parse(readFileSync(secretsFile, 'utf8')) as { metricsToken?: string };
    expect(metricsToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const scraped = await scrape(first.baseUrl, metricsToken);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('# TYPE');
    expect(first.output()).toContain(`curl -H 'Authorization: Bearer ${metricsToken}' http://`);
    expect(first.output()).toContain(`/metrics  (token kept in ${dataDir}/secrets.json)`);
    await expectRefused(await scrape(first.baseUrl));
    await expectRefused(await scrape(first.baseUrl, `${metricsToken}x`));
    await stopServer(first);

    // A data folder made before the token existed gets one on its next start; the others are kept.
    const previous = JSON.parse(readFileSync(secretsFile, 'utf8')) as Record<string, string>;
    delete previous.metricsToken;
    writeFileSync(secretsFile, JSON.stringify(previous));
    const second = await start();
    const upgraded = JSON.parse(readFileSync(secretsFile, 'utf8')) as Record<string, string>;
    expect(upgraded.metricsToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(upgraded.metricsToken).not.toBe(metricsToken);
    expect({ ...upgraded, metricsToken: undefined }).toEqual({ ...previous, metricsToken: undefined });
    expect((await scrape(second.baseUrl, upgraded.metricsToken)).status).toBe(200);
    await expectRefused(await scrape(second.baseUrl, metricsToken));
  }, 240_000);

  it('replaces an operator key of the old pk_platform_ form, which is accepted no more, and prints the new one', async () => {
    await stopServer(server);
    const stored = JSON.parse(readFileSync(secretsFile, 'utf8')) as Record<string, string>;
    const old = `pk_platform_${'x'.repeat(32)}`;
    writeFileSync(secretsFile, JSON.stringify({ ...stored, platformApiKey: old }));
    const next = await start();
    const replaced = JSON.parse(readFileSync(secretsFile, 'utf8')) as Record<string, string>;
    expect(replaced.platformApiKey).toMatch(/^op_platform_[A-Za-z0-9_-]{32}$/);
    expect({ ...replaced, platformApiKey: undefined }).toEqual({ ...stored, platformApiKey: undefined });
    expect(next.output()).toContain(`Platform key:       ${replaced.platformApiKey}`);
    const tenant = (key: string) =>
      fetch(`${next.baseUrl}/v1/tenants/ten_missing`, { headers: { authorization: `Bearer ${key}` } });
    expect((await tenant(old)).status).toBe(401);
    expect((await tenant(replaced.platformApiKey)).status).toBe(404);
  }, 120_000);
});
