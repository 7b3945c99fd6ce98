import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { bootAppOnOwnDatabase, type TestApp } from './helpers.js';
import { emptyDatabase } from './migrations.js';
import type { Socket } from 'node:net';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';
import { TcpProxy } from './tcp-proxy.js';

// WEB_CONCURRENCY=2 on the real binary: two API processes behind one port, the workers once in the primary,
// /metrics summed over all of them, a killed API process replaced, and SIGTERM stopping every process.
// The `start` command runs the workers, which act on every tenant: a database of its own.

const PLATFORM_KEY = `op_platform_${randomBytes(24).toString('base64url')}`;
const METRICS_TOKEN = randomBytes(32).toString('base64url');

let t: TestApp;
let server: ServerProcess;
let dataDir: string;
let port: number;
let tenantKey: string;

interface Answer {
  status: number;
  body: string;
}

/** One request on a connection of its own: the cluster hands out connections, not requests, round-robin. */
function send(method: string, path: string, key: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          authorization: `Bearer ${key}`,
          connection: 'close',
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk) => (text += String(chunk)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The API processes the primary has now: its child processes running main.ts (tsx may have an esbuild child too). */
function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((child) => {
      try {
        return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('main.ts');
      } catch {
        return false;
      }
    });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The log lines a server (this file's first, by default) wrote (JSON ones only), from line `from` on. */
function logLines(from = 0, of: ServerProcess = server): Array<Record<string, any>> {
  return of
    .output()
    .split('\n')
    .slice(from)
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
}

/** Pids of the processes that logged an incoming `path` request (LOG_LEVEL=debug logs one line per request). */
function pidsServing(path: string, fromLine = 0): Set<number> {
  return new Set(
    logLines(fromLine)
      .filter((line) => line.message === 'incoming request' && line.req?.url === path)
      .map((line) => line['process.pid'] as number),
  );
}

/** Pids whose sockets are the local ends of `ports` (TCP connections to PostgreSQL, by their client port). */
function pidsOwningPorts(pids: number[], ports: number[]): Set<number> {
  const inodeByPort = new Map<number, string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      inodeByPort.set(parseInt(fields[1].split(':')[1], 16), fields[9]);
    }
  }
  const wanted = new Set(ports.map((p) => inodeByPort.get(p)).filter(Boolean));
  const owners = new Set<number>();
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const target = (() => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      })();
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && wanted.has(inode)) owners.add(pid);
    }
  }
  return owners;
}

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('web_concurrency');
  dataDir = mkdtempSync(join(tmpdir(), 'payforward-cluster-'));
  port = await freePort();
  server = await startServer('start', {
    DATABASE_URL: t.adminUrl,
    DATA_DIR: dataDir,
    PORT: String(port),
    WEB_CONCURRENCY: '2',
    LOG_LEVEL: 'debug',
    SEED_DEMO_TENANT: 'false',
    PLATFORM_API_KEY: PLATFORM_KEY,
    METRICS_TOKEN,
  });
  await waitFor(() => server.output().includes('2 API processes'), 30_000, 'the start banner');
  const tenant = await send('POST', '/v1/tenants', PLATFORM_KEY, { name: 'Cluster tenant' });
  expect(tenant.status, tenant.body).toBe(200);
  tenantKey = JSON.parse(tenant.body).secret_keys.test.secret;
}, 180_000);

afterAll(async () => {
  await stopServer(server);
  await t?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('WEB_CONCURRENCY=2', () => {
  it('runs two API processes that both serve the port; the workers run only in the primary', async () => {
    const primary = server.child.pid!;
    const apis = childPids(primary);
    expect(apis).toHaveLength(2);
    expect(server.output()).toContain(`2 API processes: ${apis.join(', ')}`);
    for (const pid of apis) {
      // The children run the `api` command: no workers of their own.
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('api');
    }

    for (let i = 0; i < 10; i++) expect((await send('GET', '/v1/balance', tenantKey)).status).toBe(200);
    expect([...pidsServing('/v1/balance')].sort()).toEqual([...apis].sort());

    // Every connection as the worker role belongs to the primary, none to an API process.
    const workerPorts = await waitFor(
      async () => {
        const rows = await t.admin<{ port: number }[]>`
        SELECT client_port AS port FROM pg_stat_activity
        WHERE datname = current_database() AND usename = ${t.config.workerDbRole} AND client_port IS NOT NULL`;
        return rows.length ? rows.map((r) => r.port) : undefined;
      },
      20_000,
      'a worker connection',
    );
    expect([...pidsOwningPorts([primary, ...apis], workerPorts)]).toEqual([primary]);
    const appPorts = await t.admin<{ port: number }[]>`
      SELECT client_port AS port FROM pg_stat_activity
      WHERE datname = current_database() AND usename = ${t.config.appDbRole} AND client_port IS NOT NULL`;
    const appOwners = pidsOwningPorts(
      apis,
      appPorts.map((r) => r.port),
    );
    expect([...appOwners].sort()).toEqual([...apis].sort());
  }, 60_000);

  it('serves /metrics summed over every process, whichever one a scrape reaches', async () => {
    const counted = (text: string) => {
      const line = text
        .split('\n')
        .find((l) => l.startsWith('http_request_duration_seconds_count{') && l.includes('route="/v1/customers"'));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    };
    for (let i = 0; i < 6; i++) expect((await send('GET', '/v1/customers', tenantKey)).status).toBe(200);
    expect(pidsServing('/v1/customers').size).toBe(2);
    const before = logLines().length;
    for (let i = 0; i < 4; i++) {
      const scrape = await send('GET', '/metrics', METRICS_TOKEN);
      expect(scrape.status).toBe(200);
      expect(counted(scrape.body)).toBe(6);
    }
    expect(pidsServing('/metrics', before).size).toBe(2);
  }, 60_000);

  it('replaces a killed API process, and requests are still served', async () => {
    const primary = server.child.pid!;
    const [killed, survivor] = childPids(primary);
    const from = server.output().split('\n').length - 1;
    process.kill(killed, 'SIGKILL');
    const replacement = await waitFor(
      () => {
        const pids = childPids(primary);
        const fresh = pids.find((pid) => pid !== survivor && pid !== killed);
        return pids.length === 2 && fresh && logLines(from).some((l) => l.message === 'API process listening')
          ? fresh
          : undefined;
      },
      120_000,
      'a replacement API process',
    );
    expect(alive(killed)).toBe(false);
    expect(
      logLines(from).some(
        (l) => l.message === 'API process exited; starting another in its place' && l.api_pid === killed,
      ),
    ).toBe(true);
    for (let i = 0; i < 10; i++) expect((await send('GET', '/v1/balance', tenantKey)).status).toBe(200);
    expect([...pidsServing('/v1/balance', from)].sort()).toEqual([survivor, replacement].sort());
  }, 180_000);

  it('stops every process on SIGTERM, exiting 0', async () => {
    const primary = server.child.pid!;
    const apis = childPids(primary);
    const from = server.output().split('\n').length - 1;
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    await waitFor(() => apis.every((pid) => !alive(pid)), 20_000, 'the API processes to exit');
    // Each child drained and stopped itself; none was replaced.
    const after = logLines(from);
    for (const pid of apis)
      expect(
        after.some((l) => l.message === 'shutting down: finishing in-flight requests' && l['process.pid'] === pid),
      ).toBe(true);
    expect(after.some((l) => l.message === 'API process exited; starting another in its place')).toBe(false);
  }, 60_000);
});

/**
 * Between the app and PostgreSQL: `freeze()` holds every answer the server sends on a connection that has finished its
 * start-up (its first ReadyForQuery), as a server that stopped answering would, while new connections still open.
 */
class FreezingProxy extends TcpProxy {
  private frozen = false;
  private readonly held = new Set<Socket>();

  static start(target: URL): Promise<FreezingProxy> {
    return TcpProxy.listen(
      { host: target.hostname, port: Number(target.port || 5432) },
      (server, port) => new FreezingProxy(server, port),
    );
  }

  freeze() {
    this.frozen = true;
  }

  thaw() {
    this.frozen = false;
    for (const socket of this.held) socket.resume();
    this.held.clear();
  }

  protected relay(client: Socket, server: Socket) {
    this.tie(client, server);
    let started = false;
    let pending = Buffer.alloc(0);
    client.on('data', (chunk) => server.write(chunk));
    server.on('data', (chunk) => {
      if (!started) {
        // Server messages: a type byte and a length; the start-up ends with ReadyForQuery ('Z').
        pending = Buffer.concat([pending, chunk]);
        for (let at = 0; at + 5 <= pending.length; at += 1 + pending.readInt32BE(at + 1))
          if (pending[at] === 0x5a) started = true;
      } else if (this.frozen) {
        server.pause();
        this.held.add(server);
        return void server.unshift(chunk);
      }
      client.write(chunk);
    });
  }
}

// An API process stuck in its start: its first query (the role check) never answered, as with a server that stopped
// answering. Without a deadline it would wait for ever (the driver has no query timeout); the primary must kill it at
// API_PROCESS_START_TIMEOUT_MS and start another, which starts once the database answers again.
describe('WEB_CONCURRENCY=2: an API process that does not start in time', () => {
  // Above a healthy start of an API process under tsx on a busy machine (see README: 48-185 s for dist/main.js at
  // nice 19 and a load average of 11-19, 10-30 s usually).
  const START_TIMEOUT_MS = 90_000;
  let database: { url: string; drop(): Promise<void> };
  let proxy: FreezingProxy;
  let stalled: ServerProcess;
  let stalledPort: number;

  beforeAll(async () => {
    database = await emptyDatabase('web_concurrency_start');
    proxy = await FreezingProxy.start(new URL(database.url));
    stalledPort = await freePort();
    stalled = await startServer('api', {
      DATABASE_URL: proxy.url(database.url),
      DATA_DIR: mkdtempSync(join(tmpdir(), 'payforward-cluster-start-')),
      PORT: String(stalledPort),
      WEB_CONCURRENCY: '2',
      API_PROCESS_START_TIMEOUT_MS: String(START_TIMEOUT_MS),
      SEED_DEMO_TENANT: 'false',
      PLATFORM_API_KEY: PLATFORM_KEY,
    });
    await waitFor(() => stalled.output().includes('2 API processes'), 3 * START_TIMEOUT_MS, 'the start banner');
  }, 4 * START_TIMEOUT_MS);

  afterAll(async () => {
    proxy?.thaw();
    if (stalled) await stopServer(stalled);
    await proxy?.close();
    await database?.drop();
  });

  it(
    'kills an API process whose start waits on an unanswered query, and starts another',
    async () => {
      const primary = stalled.child.pid!;
      const [killed, survivor] = childPids(primary);
      const from = stalled.output().split('\n').length - 1;
      // Seen once beside a benchmark: the survivor missing from the children at the end. The primary logs every API
      // process's start, exit and replacement with its pid: printed on failure, they say which one went and why.
      onTestFailed(() =>
        console.error(
          `children at first ${killed} (killed) and ${survivor} (survivor); now ${childPids(primary).join(', ')}; ` +
            `the primary's log since:\n${stalled.output().split('\n').slice(from).join('\n').slice(-8000)}`,
        ),
      );
      proxy.freeze();
      process.kill(killed, 'SIGKILL');

      const overdue = await waitFor(
        () =>
          logLines(from, stalled).find(
            (l) =>
              l.message ===
              'API process not listening within API_PROCESS_START_TIMEOUT_MS; killing it and starting another',
          ),
        START_TIMEOUT_MS + 60_000,
        'the start-up deadline to kill the stuck API process',
      );
      expect(overdue.start_timeout_ms).toBe(START_TIMEOUT_MS);
      expect([killed, survivor]).not.toContain(overdue.api_pid);
      await waitFor(() => !alive(overdue.api_pid), 20_000, 'the stuck API process to be killed');

      // The database answers again: the next replacement starts, and the primary runs two API processes again.
      proxy.thaw();
      const replacement = await waitFor(
        () =>
          logLines(from, stalled).find(
            (l) => l.message === 'API process listening' && l.api_pid !== survivor && l.api_pid !== overdue.api_pid,
          )?.api_pid as number | undefined,
        3 * START_TIMEOUT_MS,
        'a replacement that starts',
      );
      expect(childPids(primary).sort()).toEqual([survivor, replacement].sort());
      expect((await fetch(`http://127.0.0.1:${stalledPort}/health`)).status).toBe(200);
    },
    6 * START_TIMEOUT_MS,
  );
});
