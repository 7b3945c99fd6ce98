import { createHmac } from 'node:crypto';
import { convertVersion, LATEST_API_VERSION } from '../modules/versions/versions.js';
import http from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import type { Sql } from '../db/index.js';
import type { Metrics } from '../http/metrics.js';
import type { Config } from '../config.js';
import { newId } from '../lib/ids.js';
import { toApiEvent } from '../modules/events/events.js';
import type { DisabledReason, SealedSecretRow, WebhookService } from '../modules/webhooks/service.js';
import { pinnedLookup, resolveAllowed, systemResolver, type Resolver } from '../modules/webhooks/ssrf.js';

interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  livemode: boolean;
  event_id: string;
  endpoint_id: string;
  attempts: number;
  url: string;
  event_type: string;
  event_object_id: string;
  event_data: { object: unknown };
  event_request_id: string | null;
  event_created_at: Date;
  event_sequence: number;
  event_api_version: string;
  tenant_api_version: string;
}

interface AttemptResult {
  attemptId: string;
  deliveryId: string;
  outcome: 'succeeded' | 'failed';
  statusCode: number | null;
  latencyMs: number;
  body: string | null;
  error: string | null;
  attemptedAt: Date;
  nextStatus: 'pending' | 'succeeded' | 'failed';
  nextAt: Date | null;
}

export interface DispatcherOptions {
  /** Decides timestamps, retry times and the auto-disable age; tests move it instead of waiting. */
  clock?: () => number;
  resolver?: Resolver;
  /** Consecutive failures that open an endpoint's circuit, and how long it stays open. */
  circuitFailures?: number;
  circuitCooldownMs?: number;
  idleWaitMs?: number;
}

const RESPONSE_KEEP_BYTES = 1024;
const RESPONSE_READ_LIMIT = 64 * 1024;

/** Standard Webhooks signatures: one `v1,<base64 HMAC-SHA256(id.timestamp.body)>` per valid secret. */
export function signatures(secrets: string[], id: string, timestamp: number, body: string): string {
  return secrets
    .map((secret) => {
      const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
      return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
    })
    .join(' ');
}

/** Seconds (or an HTTP date) from Retry-After, in milliseconds. */
function retryAfterMs(value: string | undefined, now: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/** Per endpoint: requests in flight, a token bucket, and a circuit breaker. */
class EndpointState {
  inFlight = 0;
  tokens: number;
  refilledAt: number;
  consecutiveFailures = 0;
  openUntil = 0;
  constructor(
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.refilledAt = now;
  }

  refill(now: number) {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = now;
  }
}

/**
 * Fans committed events out to the endpoints subscribed to them and delivers each one, with the
 * PostgreSQL deliveries table as the queue (`FOR UPDATE SKIP LOCKED`). Every delivery's row is
 * written before it is attempted and claimed under a lease: a worker killed mid-delivery leaves
 * it to be sent again once the lease runs out, with the same webhook-id (the event id).
 *
 * Isolation: each endpoint has its own concurrency limit, token bucket and circuit breaker, and an
 * endpoint that has no room is left out of the claim, so its backlog is never claimed in front of
 * another endpoint's deliveries and a hanging endpoint only ever holds its own slots.
 */
export class WebhookDispatcher {
  private readonly settings: Config['webhooks'];
  private readonly clock: () => number;
  private readonly resolver: Resolver;
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly secrets = new Map<string, string>();
  private readonly results: AttemptResult[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };
  private running = false;
  private loops: Promise<void>[] = [];
  private stopSleeping = () => {};
  private stopped = Promise.resolve();

  constructor(
    private readonly deps: {
      workerSql: Sql;
      webhooks: WebhookService;
      metrics: Metrics;
      config: Pick<Config, 'webhooks'>;
      log: FastifyBaseLogger;
    },
    private readonly options: DispatcherOptions = {},
  ) {
    this.settings = deps.config.webhooks;
    this.clock = options.clock ?? Date.now;
    this.resolver = options.resolver ?? systemResolver;
  }

  start() {
    this.running = true;
    this.stopped = new Promise((resolve) => (this.stopSleeping = resolve));
    this.loops = [
      this.loop('webhook-fan-out', () => this.fanOutOnce()),
      this.loop('webhook-deliver', () => this.claimOnce()),
      this.loop('webhook-record', () => this.recordOnce()),
      this.loop('webhook-queue-depth', () => this.countQueue(), 5_000),
    ];
  }

  async stop() {
    this.running = false;
    this.stopSleeping();
    await Promise.allSettled(this.loops);
    await Promise.allSettled([...this.inFlight]);
    await this.recordOnce().catch(() => 0);
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }

  /** Runs a pass again at once while it finds work; otherwise waits a little. Errors are logged, not fatal. */
  private async loop(name: string, pass: () => Promise<number>, idleMs = this.options.idleWaitMs ?? 25) {
    while (this.running) {
      let wait = idleMs;
      try {
        if (await pass()) continue;
      } catch (error) {
        this.deps.log.error({ err: error, worker: name }, 'webhook pass failed');
        wait = Math.max(idleMs, 500);
      }
      if (this.running) await Promise.race([new Promise((resolve) => setTimeout(resolve, wait).unref()), this.stopped]);
    }
  }

  async fanOutOnce(limit = 1000): Promise<number> {
    const rows = await this.deps.workerSql`SELECT delivery_id FROM worker_fan_out_webhook_events(${limit})`;
    return rows.count;
  }

  private state(endpointId: string, now: number): EndpointState {
    let state = this.endpoints.get(endpointId);
    if (!state) this.endpoints.set(endpointId, (state = new EndpointState(this.settings.ratePerEndpoint, now)));
    return state;
  }

  /** Claims what this worker has room for and starts sending it; returns how many it claimed. */
  async claimOnce(): Promise<number> {
    const room = this.settings.concurrency - this.inFlight.size;
    if (room <= 0) {
      await Promise.race(this.inFlight);
      return 1;
    }
    const now = this.clock();
    const skip: string[] = [];
    for (const [id, state] of this.endpoints) {
      state.refill(now);
      const halfOpen = state.openUntil > 0 && state.openUntil <= now;
      const limit = halfOpen ? 1 : this.settings.concurrencyPerEndpoint;
      if (state.openUntil > now || state.inFlight >= limit || state.tokens < 1) skip.push(id);
    }
    // An attempt, queueing for a socket included, ends within the timeout and is recorded within
    // moments: a lease twice as long plus a margin only runs out when the worker is gone.
    const lease = `${Math.ceil((this.settings.timeoutMs * 2) / 1000) + 10} seconds`;
    const claimed = await this.deps.workerSql<ClaimedDelivery[]>`
      SELECT * FROM worker_claim_webhook_deliveries(${new Date(now)}, ${Math.min(room, 256)},
        ${this.settings.concurrencyPerEndpoint}, ${lease}::interval, ${skip})`;
    if (!claimed.length) return 0;
    const secrets = await this.secretsFor([...new Set(claimed.map((d) => d.endpoint_id))], now);
    for (const delivery of claimed) {
      const state = this.state(delivery.endpoint_id, now);
      state.inFlight++;
      state.tokens--;
      const sending: Promise<void> = this.attempt(delivery, secrets.get(delivery.endpoint_id) ?? [])
        .then((result) => this.settle(delivery, state, result))
        .catch((error) => this.deps.log.error({ err: error, delivery: delivery.id }, 'webhook attempt failed'))
        .finally(() => {
          state.inFlight--;
          this.inFlight.delete(sending);
        });
      this.inFlight.add(sending);
    }
    return claimed.length;
  }

  private async secretsFor(endpointIds: string[], now: number): Promise<Map<string, string[]>> {
    const rows = await this.deps.workerSql<SealedSecretRow[]>`
      SELECT * FROM worker_webhook_secrets(${endpointIds}, ${new Date(now)})`;
    const unseen = rows.filter((row) => !this.secrets.has(row.id));
    const opened = this.deps.webhooks.openSecrets(unseen);
    const byEndpoint = new Map<string, string[]>();
    for (const row of rows) {
      const secret = this.secrets.get(row.id) ?? opened.get(row.id)!;
      this.secrets.set(row.id, secret);
      byEndpoint.set(row.endpoint_id, [...(byEndpoint.get(row.endpoint_id) ?? []), secret]);
    }
    return byEndpoint;
  }

  /** One HTTP attempt. Never throws: every way it can go wrong is an outcome for the log. */
  private async attempt(delivery: ClaimedDelivery, secrets: string[]) {
    const attemptedAt = this.clock();
    const started = performance.now();
    // The event as the API shows it, in the version the tenant is pinned to.
    const body = JSON.stringify(
      convertVersion(
        toApiEvent({
          id: delivery.event_id,
          tenant_id: delivery.tenant_id,
          livemode: delivery.livemode,
          type: delivery.event_type,
          object_id: delivery.event_object_id,
          data: delivery.event_data,
          request_id: delivery.event_request_id,
          created_at: delivery.event_created_at,
          sequence: delivery.event_sequence,
          api_version: delivery.event_api_version,
        }),
        LATEST_API_VERSION,
        delivery.tenant_api_version,
      ),
    );
    if (delivery.attempts === 0)
      this.deps.metrics.webhookDeliveryLag.observe(
        Math.max(0, (attemptedAt - new Date(delivery.event_created_at).getTime()) / 1000),
      );
    const timestamp = Math.floor(attemptedAt / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'PayForward-Webhooks/1.0',
      'webhook-id': delivery.event_id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatures(secrets, delivery.event_id, timestamp, body),
    };
    const outcome = await this.post(delivery.url, headers, body);
    return { ...outcome, attemptedAt: new Date(attemptedAt), latencyMs: Math.round(performance.now() - started) };
  }

  private async post(
    url: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<{ statusCode: number | null; body: string | null; error: string | null; retryAfter?: string }> {
    const target = new URL(url);
    let address: string;
    try {
      [address] = await resolveAllowed(target.hostname, this.settings.allowPrivate, this.resolver);
    } catch (error) {
      return { statusCode: null, body: null, error: `refused: ${(error as Error).message}` };
    }
    const client = target.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const request = client.request(
        target,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
          agent: this.agents[target.protocol as 'http:' | 'https:'],
          lookup: pinnedLookup(address),
          signal: AbortSignal.timeout(this.settings.timeoutMs),
        },
        (response) => {
          const chunks: Buffer[] = [];
          let read = 0;
          response.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read <= RESPONSE_KEEP_BYTES + chunk.length) chunks.push(chunk);
            // A receiver that answers with a flood is cut off; its first bytes are all the log keeps.
            if (read > RESPONSE_READ_LIMIT) response.destroy();
          });
          const done = () =>
            resolve({
              statusCode: response.statusCode ?? null,
              body: Buffer.concat(chunks).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
              error: null,
              retryAfter: response.headers['retry-after'],
            });
          response.on('end', done);
          response.on('close', done);
        },
      );
      request.on('error', (error) => {
        const timedOut = error.name === 'AbortError' || error.name === 'TimeoutError';
        resolve({ statusCode: null, body: null, error: timedOut ? 'timeout' : `${error.name}: ${error.message}` });
      });
      request.end(body);
    });
  }

  /** Decides the delivery's next state from an attempt and queues it to be recorded. */
  private async settle(
    delivery: ClaimedDelivery,
    state: EndpointState,
    result: Awaited<ReturnType<WebhookDispatcher['attempt']>> & { retryAfter?: string },
  ) {
    const status = result.statusCode;
    const succeeded = status !== null && status >= 200 && status < 300;
    const now = result.attemptedAt.getTime();
    const attemptsDone = delivery.attempts + 1;
    let nextStatus: AttemptResult['nextStatus'] = 'succeeded';
    let nextAt: Date | null = null;
    if (succeeded) {
      state.consecutiveFailures = 0;
      state.openUntil = 0;
    } else {
      state.consecutiveFailures++;
      if (state.consecutiveFailures >= (this.options.circuitFailures ?? 5))
        state.openUntil = now + (this.options.circuitCooldownMs ?? 30_000);
      const schedule = this.settings.retryScheduleMs;
      if (status === 410 || attemptsDone >= schedule.length) {
        nextStatus = 'failed';
      } else {
        nextStatus = 'pending';
        const jitter = 0.9 + Math.random() * 0.2;
        const asked = status === 429 || status === 503 ? retryAfterMs(result.retryAfter, now) : null;
        nextAt = new Date(now + Math.max(schedule[attemptsDone] * jitter, Math.min(asked ?? 0, 86_400_000)));
      }
    }
    const label = succeeded
      ? 'succeeded'
      : result.error?.startsWith('refused')
        ? 'refused'
        : result.error === 'timeout'
          ? 'timeout'
          : 'failed';
    this.deps.metrics.webhookAttempts.inc({ outcome: label });
    this.results.push({
      attemptId: newId('whatt'),
      deliveryId: delivery.id,
      outcome: succeeded ? 'succeeded' : 'failed',
      statusCode: status,
      latencyMs: result.latencyMs,
      body: result.body,
      error: result.error,
      attemptedAt: result.attemptedAt,
      nextStatus,
      nextAt,
    });
    if (status === 410) await this.disable(delivery, 'gone');
  }

  private async disable(
    delivery: { tenant_id: string; livemode: boolean; endpoint_id: string },
    reason: DisabledReason,
  ) {
    const disabled = await this.deps.webhooks.disable(
      { tenantId: delivery.tenant_id, livemode: delivery.livemode },
      delivery.endpoint_id,
      reason,
    );
    if (disabled) this.deps.log.warn({ endpoint: delivery.endpoint_id, reason }, 'webhook endpoint disabled');
  }

  /** Writes the attempts made since the last call, in one statement; then disables endpoints failing too long. */
  async recordOnce(): Promise<number> {
    const batch = this.results.splice(0, 1000);
    if (!batch.length) return 0;
    const column = <K extends keyof AttemptResult>(key: K) => batch.map((r) => r[key]);
    let streaks: { endpoint_id: string; tenant_id: string; livemode: boolean; failing_since: Date | null }[];
    try {
      streaks = await this.deps.workerSql`
        SELECT * FROM worker_record_webhook_attempts(${column('attemptId')}, ${column('deliveryId')},
          ${column('outcome')}, ${column('statusCode') as (number | null)[]}::integer[],
          ${column('latencyMs')}::integer[], ${column('body') as (string | null)[]}::text[],
          ${column('error') as (string | null)[]}::text[], ${batch.map((r) => r.attemptedAt.toISOString())}::timestamptz[],
          ${column('nextStatus')}, ${batch.map((r) => r.nextAt?.toISOString() ?? null)}::timestamptz[])`;
    } catch (error) {
      // Kept for the next pass; if this process dies first, the leases run out and the deliveries go again.
      this.results.unshift(...batch);
      throw error;
    }
    const now = this.clock();
    for (const streak of streaks) {
      if (streak.failing_since && now - new Date(streak.failing_since).getTime() >= this.settings.disableAfterMs)
        await this.disable(streak, 'failing');
    }
    return batch.length;
  }

  private async countQueue(): Promise<number> {
    const [row] = await this.deps.workerSql<{ depth: number }[]>`SELECT worker_webhook_queue_depth() AS depth`;
    this.deps.metrics.webhookQueueDepth.set(row.depth);
    return 0;
  }

  /** Until every delivery started so far has been attempted and recorded (tests and shutdown). */
  async idle() {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    while (await this.recordOnce());
  }
}
