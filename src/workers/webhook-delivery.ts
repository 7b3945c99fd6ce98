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
import { WebhookAmqpQueue, type JobHandle, type WebhookJob } from './webhook-amqp.js';

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
  /** Moved on by every dispatch, record, redelivery and replay: the attempt is recorded only while it is current. */
  dispatch_seq: number;
  /** RabbitMQ transport only: when the attempt is due (a job can come back from a delay queue early). */
  next_attempt_at?: Date;
}

/** The RabbitMQ message a delivery came in, acked once the attempt's outcome is recorded. */
interface QueuedAttempt {
  job: WebhookJob;
  handle: JobHandle;
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
  dispatchSeq: number;
  queued?: QueuedAttempt;
}

export interface DispatcherOptions {
  /** Decides timestamps, retry times and the auto-disable age; tests move it instead of waiting. */
  clock?: () => number;
  resolver?: Resolver;
  /** Consecutive failures that open an endpoint's circuit, and how long it stays open. */
  circuitFailures?: number;
  circuitCooldownMs?: number;
  idleWaitMs?: number;
  queueDepthEveryMs?: number;
  /** How long a host name's checked address is reused (0: resolved and checked for every attempt). */
  dnsCacheMs?: number;
}

const RESPONSE_KEEP_BYTES = 1024;
const BODY_CACHE_SIZE = 10_000;
const DNS_CACHE_MS = 5_000;
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
  /** RabbitMQ transport: jobs received while the endpoint had no free slot, sent as slots free up. */
  waiting: { delivery: ClaimedDelivery; secrets: string[]; queued: QueuedAttempt }[] = [];
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
 * Fans committed events out to the endpoints subscribed to them and delivers each one. The deliveries
 * table holds every delivery's state on both transports. With RabbitMQ (`transport: amqp`) the jobs
 * travel through the broker (see dispatchOnce, startJobs, ackRecorded and src/workers/webhook-amqp.ts);
 * otherwise the table itself is the queue (`FOR UPDATE SKIP LOCKED`), as described here. Every delivery's row is
 * written before it is attempted and claimed under a lease: a worker killed mid-delivery leaves
 * it to be sent again once the lease runs out, with the same webhook-id (the event id).
 *
 * Isolation: each endpoint has its own concurrency limit, token bucket and circuit breaker, and an
 * endpoint that has no room is left out of the claim, so its backlog is never claimed in front of
 * another endpoint's deliveries and a hanging endpoint only ever holds its own slots.
 */
export class WebhookDispatcher {
  private readonly settings: Config['webhooks'];
  private readonly queue?: WebhookAmqpQueue;
  private received: QueuedAttempt[] = [];
  private flushing = false;
  private readonly clock: () => number;
  private readonly resolver: Resolver;
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly secrets = new Map<string, string>();
  private readonly results: AttemptResult[] = [];
  private readonly bodies = new Map<string, string>();
  private readonly addresses = new Map<string, { address: string; until: number }>();
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
      config: Pick<Config, 'webhooks' | 'amqpUrl'>;
      log: FastifyBaseLogger;
    },
    private readonly options: DispatcherOptions = {},
  ) {
    this.settings = deps.config.webhooks;
    this.clock = options.clock ?? Date.now;
    this.resolver = options.resolver ?? systemResolver;
    if (this.settings.transport === 'amqp' && deps.config.amqpUrl)
      this.queue = new WebhookAmqpQueue(
        deps.config.amqpUrl,
        this.settings.amqpPrefix,
        this.settings.retryScheduleMs,
        // Room for every endpoint's waiting jobs besides the ones in flight (see startJobs).
        2 * this.settings.concurrency,
        // A publish unconfirmed for as long as its lease is as good as lost: the sweeper sends it again by then.
        this.settings.amqpPublishLeaseMs,
        deps.log,
        (job, handle) => this.receive({ job, handle }),
      );
  }

  start() {
    this.running = true;
    this.stopped = new Promise((resolve) => (this.stopSleeping = resolve));
    this.queue?.start();
    this.loops = [
      this.loop('webhook-fan-out', () => this.fanOutOnce()),
      this.queue
        ? this.loop('webhook-dispatch', () => this.dispatchOnce())
        : this.loop('webhook-deliver', () => this.claimOnce()),
      this.loop('webhook-record', () => this.recordOnce()),
      this.loop('webhook-queue-depth', () => this.countQueue(), this.options.queueDepthEveryMs ?? 5_000),
    ];
  }

  async stop() {
    this.running = false;
    this.stopSleeping();
    await this.queue?.stopConsuming();
    await Promise.allSettled(this.loops);
    while (this.flushing) await new Promise((resolve) => setTimeout(resolve, 5));
    await Promise.allSettled([...this.inFlight]);
    await this.recordOnce().catch(() => 0);
    // Jobs received but not started go back to the queue with the connection.
    await this.queue?.close();
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
    // An endpoint with requests in flight gets no more than its free slots from this claim.
    const busy: string[] = [];
    const free: number[] = [];
    for (const [id, state] of this.endpoints) {
      state.refill(now);
      const slots = this.slots(state, now);
      if (state.openUntil > now || state.inFlight >= slots || state.tokens < 1) skip.push(id);
      else if (state.inFlight > 0 || slots < this.settings.concurrencyPerEndpoint) {
        busy.push(id);
        free.push(slots - state.inFlight);
      }
    }
    // An attempt, queueing for a socket included, ends within the timeout and is recorded within
    // moments: a lease twice as long plus a margin only runs out when the worker is gone.
    const lease = `${Math.ceil((this.settings.timeoutMs * 2) / 1000) + 10} seconds`;
    const claimed = await this.deps.workerSql<ClaimedDelivery[]>`
      SELECT * FROM worker_claim_webhook_deliveries(${new Date(now)}, ${Math.min(room, 256)},
        ${this.settings.concurrencyPerEndpoint}, ${lease}::interval, ${skip}, ${busy}::text[], ${free}::integer[])`;
    if (!claimed.length) return 0;
    const secrets = await this.secretsFor([...new Set(claimed.map((d) => d.endpoint_id))], now);
    for (const delivery of claimed)
      this.send(delivery, this.state(delivery.endpoint_id, now), secrets.get(delivery.endpoint_id) ?? []);
    return claimed.length;
  }

  private send(delivery: ClaimedDelivery, state: EndpointState, secrets: string[], queued?: QueuedAttempt) {
    state.inFlight++;
    state.tokens--;
    const sending: Promise<void> = this.attempt(delivery, secrets)
      .then((result) => this.settle(delivery, state, result, queued))
      .catch((error) => this.deps.log.error({ err: error, delivery: delivery.id }, 'webhook attempt failed'))
      .finally(() => {
        state.inFlight--;
        this.inFlight.delete(sending);
        if (state.waiting.length) this.sendWaiting(state);
      });
    this.inFlight.add(sending);
  }

  private slots(state: EndpointState, now: number) {
    const halfOpen = state.openUntil > 0 && state.openUntil <= now;
    return halfOpen ? 1 : this.settings.concurrencyPerEndpoint;
  }

  /** Sends an endpoint's waiting jobs into its free slots; with its circuit open they wait in a delay queue. */
  private sendWaiting(state: EndpointState) {
    if (!this.running) return;
    const now = this.clock();
    state.refill(now);
    const parked: { queued: QueuedAttempt; waitMs: number }[] = [];
    if (state.openUntil > now)
      for (const { queued } of state.waiting.splice(0)) parked.push({ queued, waitMs: state.openUntil - now });
    while (state.waiting.length && state.inFlight < this.slots(state, now)) {
      const next = state.waiting.shift()!;
      if (state.tokens < 1)
        parked.push({ queued: next.queued, waitMs: ((1 - state.tokens) / this.settings.ratePerEndpoint) * 1000 });
      else this.send(next.delivery, state, next.secrets, next.queued);
    }
    if (parked.length) void this.park(parked);
  }

  /** Jobs wait in a delay queue (new messages), then the ones that carried them are acked. */
  private async park(parked: { queued: QueuedAttempt; waitMs: number }[]) {
    const queue = this.queue!;
    try {
      await queue.delay(parked.map((p) => ({ job: p.queued.job, waitMs: p.waitMs })));
    } catch (error) {
      // Back to the work queue rather than held unacked: it comes again and waits then.
      this.deps.log.warn({ err: error }, 'webhook jobs could not wait in a delay queue; requeued');
      for (const p of parked) queue.requeue(p.queued.handle);
      return;
    }
    for (const p of parked) queue.ack(p.queued.handle);
  }

  /**
   * RabbitMQ transport: hands due deliveries to the work queue, and is the sweeper too: a delivery whose lease ran
   * out unrecorded (publish unconfirmed, message or worker lost) is due again and goes out in a new message. The
   * lease is short until the broker has confirmed the job (a worker killed in between leaves the delivery due again
   * within WEBHOOK_AMQP_PUBLISH_LEASE_SECONDS), then long enough for the job to wait its turn in the work queue.
   */
  async dispatchOnce(limit = 500): Promise<number> {
    const queue = this.queue!;
    if (!queue.connected) return 0;
    const now = this.clock();
    const skip = [...this.endpoints].filter(([, state]) => state.openUntil > now).map(([id]) => id);
    const jobs = await this.deps.workerSql<WebhookJob[]>`
      SELECT id, dispatch_seq AS seq FROM worker_dispatch_webhook_deliveries(${new Date(now)}, ${limit},
        ${this.settings.amqpQueuedPerEndpoint}, ${`${this.settings.amqpPublishLeaseMs / 1000} seconds`}::interval,
        ${skip})`;
    if (!jobs.length) return 0;
    try {
      await queue.publish(jobs);
    } catch (error) {
      // Unconfirmed: due again at once rather than when the lease runs out (a duplicate at worst).
      await this.deps.workerSql`
        SELECT worker_release_webhook_deliveries(${jobs.map((j) => j.id)}, ${jobs.map((j) => j.seq)}::integer[])`;
      throw error;
    }
    const until = new Date(now + this.settings.amqpLeaseMs);
    await this.extendLeases(jobs.map((job) => ({ job, until })));
    return jobs.length;
  }

  /** Grants the long lease to deliveries whose message the broker confirmed, unless they moved on meanwhile. */
  private async extendLeases(confirmed: { job: WebhookJob; until: Date }[]) {
    if (!confirmed.length) return;
    await this.deps.workerSql`
      SELECT worker_extend_webhook_leases(${confirmed.map((c) => c.job.id)},
        ${confirmed.map((c) => c.job.seq)}::integer[], ${confirmed.map((c) => c.until.toISOString())}::timestamptz[])`;
  }

  private receive(queued: QueuedAttempt) {
    this.received.push(queued);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.startReceived());
    }
  }

  /** Starts the jobs received since the last call, with one query for all of them. */
  private async startReceived() {
    // Once stopping, what is left goes back to the queue with the connection.
    while (this.received.length && this.running) {
      const batch = this.received.splice(0, 512);
      try {
        await this.startJobs(batch);
      } catch (error) {
        // Not acked: they stay this worker's until PostgreSQL answers again.
        this.deps.log.error({ err: error }, 'webhook jobs could not be started; trying again');
        this.received.unshift(...batch);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    this.flushing = false;
  }

  private async startJobs(batch: QueuedAttempt[]) {
    const queue = this.queue!;
    const rows = await this.deps.workerSql<ClaimedDelivery[]>`
      SELECT * FROM worker_dispatched_webhook_deliveries(${batch.map((q) => q.job.id)},
        ${batch.map((q) => q.job.seq)}::integer[])`;
    const byId = new Map(rows.map((row) => [row.id, row]));
    const now = this.clock();
    const secrets = rows.length
      ? await this.secretsFor([...new Set(rows.map((d) => d.endpoint_id))], now)
      : new Map<string, string[]>();
    const parked: { queued: QueuedAttempt; waitMs: number }[] = [];
    for (const queued of batch) {
      const delivery = byId.get(queued.job.id);
      // Delivered, given up, replayed in a newer message or endpoint disabled: nothing to send.
      if (!delivery) {
        queue.ack(queued.handle);
        continue;
      }
      const state = this.state(delivery.endpoint_id, now);
      state.refill(now);
      const dueIn = new Date(delivery.next_attempt_at!).getTime() - now;
      // Not yet due (back early from a delay queue), circuit open or over its rate: it waits in a delay queue, not
      // in this worker's prefetch. Only a job whose endpoint's slots are all busy waits here, and the dispatch
      // hands an endpoint only so many jobs at once (WEBHOOK_AMQP_QUEUED_PER_ENDPOINT): a hanging endpoint holds a
      // bounded share of the prefetch, and its circuit, once open, sends even those to a delay queue.
      const waitMs =
        dueIn > 5
          ? dueIn
          : state.openUntil > now
            ? state.openUntil - now
            : state.tokens < 1
              ? ((1 - state.tokens) / this.settings.ratePerEndpoint) * 1000
              : 0;
      const found = { delivery, secrets: secrets.get(delivery.endpoint_id) ?? [], queued };
      if (waitMs > 0) parked.push({ queued, waitMs });
      else if (state.inFlight >= this.slots(state, now)) state.waiting.push(found);
      else this.send(found.delivery, state, found.secrets, queued);
    }
    if (parked.length) await this.park(parked);
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
    const body = this.bodyOf(delivery);
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

  /**
   * The event as the API shows it, in the version the tenant is pinned to. An event never changes, and it usually
   * goes to several endpoints at once (and again on retries): it is converted and serialised once per version.
   */
  private bodyOf(delivery: ClaimedDelivery): string {
    const key = `${delivery.event_id}@${delivery.tenant_api_version}`;
    const cached = this.bodies.get(key);
    if (cached !== undefined) return cached;
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
    if (this.bodies.size >= BODY_CACHE_SIZE) this.bodies.clear();
    this.bodies.set(key, body);
    return body;
  }

  /**
   * The checked addresses of a host name, kept for a moment: a name lookup per delivery would queue every delivery
   * behind the few threads libuv resolves with. Every address is checked before it is kept, and the connection is
   * pinned to it, so a rebinding DNS answer gains nothing; a changed answer is seen within `dnsCacheMs`.
   */
  private async addressOf(hostname: string, now: number): Promise<string> {
    const ttl = this.options.dnsCacheMs ?? DNS_CACHE_MS;
    const cached = this.addresses.get(hostname);
    if (cached && cached.until > now) return cached.address;
    const [address] = await resolveAllowed(hostname, this.settings.allowPrivate, this.resolver);
    if (ttl > 0) {
      if (this.addresses.size >= BODY_CACHE_SIZE) this.addresses.clear();
      this.addresses.set(hostname, { address, until: now + ttl });
    }
    return address;
  }

  private async post(
    url: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<{ statusCode: number | null; body: string | null; error: string | null; retryAfter?: string }> {
    const target = new URL(url);
    let address: string;
    try {
      address = await this.addressOf(target.hostname, performance.now());
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
    queued?: QueuedAttempt,
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
      dispatchSeq: delivery.dispatch_seq,
      queued,
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
    // A retry to wait in a RabbitMQ delay queue gets the short lease: its message is published after this commit,
    // and only its confirm extends the lease (ackRecorded), so a worker killed in between delays it by that bound.
    const publishLeaseUntil = new Date(this.clock() + this.settings.amqpPublishLeaseMs).toISOString();
    try {
      streaks = await this.deps.workerSql`
        SELECT * FROM worker_record_webhook_attempts(${column('attemptId')}, ${column('deliveryId')},
          ${column('outcome')}, ${column('statusCode') as (number | null)[]}::integer[],
          ${column('latencyMs')}::integer[], ${column('body') as (string | null)[]}::text[],
          ${column('error') as (string | null)[]}::text[], ${batch.map((r) => r.attemptedAt.toISOString())}::timestamptz[],
          ${column('nextStatus')}, ${batch.map((r) => r.nextAt?.toISOString() ?? null)}::timestamptz[],
          ${column('dispatchSeq')}::integer[],
          ${batch.map((r) => (r.queued && r.nextAt ? publishLeaseUntil : null))}::timestamptz[])`;
    } catch (error) {
      // Kept for the next pass; if this process dies first, the leases run out and the deliveries go again.
      this.results.unshift(...batch);
      throw error;
    }
    await this.ackRecorded(batch);
    const now = this.clock();
    for (const streak of streaks) {
      if (streak.failing_since && now - new Date(streak.failing_since).getTime() >= this.settings.disableAfterMs)
        await this.disable(streak, 'failing');
    }
    return batch.length;
  }

  /**
   * RabbitMQ transport, once attempts are recorded: a retry waits in a delay queue (a new message, the dispatch's
   * next number); once the broker confirmed it, its lease is extended to the retry's due time plus the lease; then
   * the job that carried the attempt is acked. Lost before the ack, the job comes again and is dropped as stale; lost
   * before the delay's confirm or the extension, the short lease runs out and the sweeper sends the retry once due.
   */
  private async ackRecorded(batch: AttemptResult[]) {
    const queue = this.queue;
    const queued = batch.filter((r) => r.queued);
    if (!queue || !queued.length) return;
    const now = this.clock();
    const retries = queued
      .filter((r) => r.nextStatus === 'pending' && r.nextAt)
      .map((r) => ({
        job: { id: r.queued!.job.id, seq: r.queued!.job.seq + 1 },
        waitMs: Math.max(1, r.nextAt!.getTime() - now),
        until: new Date(r.nextAt!.getTime() + this.settings.amqpLeaseMs),
      }));
    try {
      await queue.delay(retries);
      await this.extendLeases(retries);
    } catch (error) {
      // Still under the short lease they were recorded with: the sweeper sends each one once that lease and its
      // backoff have run out (twice at worst, if its delay message did reach the broker).
      this.deps.log.warn({ err: error }, 'webhook retries not confirmed in a delay queue; the sweeper will send them');
    }
    for (const r of queued) queue.ack(r.queued!.handle);
  }

  private async countQueue(): Promise<number> {
    const [row] = await this.deps.workerSql<{ depth: number }[]>`SELECT worker_webhook_queue_depth() AS depth`;
    this.deps.metrics.webhookQueueDepth.set(row.depth);
    const broker = await this.queue?.depth();
    if (broker) {
      this.deps.metrics.webhookBrokerMessages.set({ queue: 'ready' }, broker.ready);
      this.deps.metrics.webhookBrokerMessages.set({ queue: 'delayed' }, broker.delayed);
    }
    return 0;
  }

  /** Until every delivery started so far has been attempted and recorded (tests and shutdown). */
  async idle() {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    while (await this.recordOnce());
  }
}
