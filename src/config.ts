import { resolve } from 'node:path';
import { parseCidrList, type Cidr } from './modules/webhooks/ssrf.js';

export const SIMULATED_PROCESSORS = ['sim_alpha', 'sim_beta'] as const;
export type SimulatedProcessorName = (typeof SIMULATED_PROCESSORS)[number];

export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  /** PUBLIC_URL was set: the OpenAPI servers entry uses it rather than the host each request names. */
  publicUrlConfigured: boolean;
  dataDir: string;
  /** The built dashboard (`npm run build` writes dist/dashboard), served at /dashboard. */
  dashboardDir: string;
  databaseUrl?: string;
  databaseReplicaUrl?: string;
  /** Reads go to the primary while the replica is further behind than this (DATABASE_REPLICA_MAX_LAG_MS). */
  replicaMaxLagMs: number;
  /** How old the cached replay position may be before a read asks the replica again (DATABASE_REPLICA_POLL_MS). */
  replicaPollMs: number;
  appDbRole: string;
  appDbPassword: string;
  /** The role the background workers connect as: the only one that may run the cross-tenant worker_* functions. */
  workerDbRole: string;
  workerDbPassword: string;
  embeddedPgPort: number;
  redisUrl?: string;
  amqpUrl?: string;
  platformApiKey?: string;
  vaultKek?: string;
  vaultFingerprintKey?: string;
  jwtSecret?: string;
  /** Base64 of the 32-byte Ed25519 seed that signs audit checkpoints; generated into the data folder in development. */
  auditSigningKey?: string;
  /** Public keys (base64, raw Ed25519) of earlier signing keys whose checkpoints audit:verify still trusts. */
  auditPublicKeys: string[];
  /** How often the worker signs every moved audit chain head. */
  auditCheckpointIntervalMs: number;
  logLevel: string;
  batchMaxConcurrency: number;
  batchMaxSize: number;
  dbPoolSize: number;
  /** Connections of the batched payment reads (a pool of their own, beside DB_POOL_SIZE). */
  dbReadPoolSize: number;
  /** A query unanswered this long, on a server that answers no ping either, fails (StallWatch); 0: never. */
  databaseAnswerTimeoutMs: number;
  /** API processes behind the one port (node:cluster); background workers run once, in the primary. */
  webConcurrency: number;
  /** With WEB_CONCURRENCY > 1: how long an API process may take to listen before the primary kills and replaces it. */
  apiProcessStartTimeoutMs: number;
  /**
   * Per simulated processor: latency, the probability (0–1) of a processing_error, and the
   * probability that the processor acts on a call and its answer is lost (a dropped connection).
   */
  processors: Record<SimulatedProcessorName, { latencyMs: number; failureRate: number; lostResponseRate: number }>;
  /** A processor call not answered within this time has an unknown outcome: it stays pending and is replayed. */
  processorTimeoutMs: number;
  /** How often the worker resumes payments and refunds left pending, and how old a pending call must be. */
  recoveryIntervalMs: number;
  recoveryAfterSeconds: number;
  rateLimitPerKey: number;
  rateLimitPerTenant: number;
  rateLimitWindowMs: number;
  /** Requests per client address per window, counted before authentication. */
  rateLimitPerAddress: number;
  /** Failed authentications (any 401) per client address per `authFailureWindowMs`. */
  authFailuresPerAddress: number;
  authFailureWindowMs: number;
  /** fastify's trustProxy: which proxies' X-Forwarded-For names the client address. */
  trustProxy: boolean | string | ((address: string, hop: number) => boolean);
  /** The header in which the proxy in front hands over its request id (see src/http/request-id.ts); none: ours. */
  requestIdHeader: string | undefined;
  /** How long a resolved API key is cached; revocations reach every process by notification anyway. */
  apiKeyCacheTtlMs: number;
  /** Bearer token for GET /metrics on the API port; without it that route refuses every request. */
  metricsToken?: string;
  /** A separate listener serving /metrics without a token, for a scraper on a private network. */
  metricsPort?: number;
  metricsHost: string;
  /** Cards tokenized (saved, or inline in a payment) per key and per tenant per window: a fingerprint oracle's pace. */
  paymentMethodRateLimitPerKey: number;
  paymentMethodRateLimitPerTenant: number;
  paymentMethodRateLimitWindowMs: number;
  bodyLimitBytes: number;
  authorizationExpiryDays: number;
  idempotencyTtlHours: number;
  /** How long request logs are kept, and how often each API process writes the ones it gathered. */
  requestLogRetentionDays: number;
  requestLogFlushMs: number;
  /** How often the worker runs the settlement job and moves payouts along the bank rail. */
  settlementIntervalMs: number;
  payoutRailIntervalMs: number;
  /** How often the worker produces queued reports and queues scheduled ones. */
  reportIntervalMs: number;
  /** A payment method unused this long loses its encrypted card number (token, brand and last4 stay). */
  cardDataRetentionDays: number;
  /**
   * A claimed key whose owner's heartbeat (every fifth of this) has been missing this long belongs
   * to a dead process: a retry may take it over.
   */
  idempotencyOwnerTimeoutSeconds: number;
  seedDemoTenant: boolean;
  /** Days of activity the first start gives the demo tenant (DEMO_SEED_DAYS, 0 for none). */
  demoSeedDays: number;
  /** A worker item (payment, payout, settlement group…) that failed waits this long, doubling per failure. */
  workerRetryBaseMs: number;
  /** GET /v1/events/stream: a comment line this often keeps proxies from closing an idle stream. */
  eventStreamHeartbeatMs: number;
  /** Open event streams per tenant (both modes) across every API process; one more is refused with 429. */
  eventStreamMaxPerTenant: number;
  /**
   * How long an open stream's slot lease lives unless its process renews it (every third of this):
   * the streams of a process that crashed stop counting against the bound after at most this long.
   */
  eventStreamLeaseMs: number;
  workerRetryMaxMs: number;
  /** Where invitations are sent from; without SMTP_URL (never in production) mail goes to the dev outbox. */
  smtpUrl?: string;
  mailFrom: string;
  /** NODE_ENV=production: no dev outbox, and no mail link in the log. */
  production: boolean;
  /** Webhook delivery: see the Webhooks section of the README. */
  webhooks: {
    allowPrivate: Cidr[];
    retryScheduleMs: number[];
    timeoutMs: number;
    disableAfterMs: number;
    rotationGraceSeconds: number;
    concurrencyPerEndpoint: number;
    ratePerEndpoint: number;
    concurrency: number;
    /** Where delivery jobs wait: RabbitMQ when AMQP_URL is set (unless WEBHOOK_TRANSPORT=postgres), else PostgreSQL. */
    transport: 'amqp' | 'postgres';
    /** Prefix of the RabbitMQ exchanges and queues, so several deployments (or tests) can share a broker. */
    amqpPrefix: string;
    /** How long a delivery handed to RabbitMQ may go unrecorded before it is published again. */
    amqpLeaseMs: number;
    /**
     * The lease of a delivery whose message the broker has not confirmed yet (just dispatched, or a retry just
     * recorded): a worker killed before the confirm leaves it due again this soon, not after amqpLeaseMs.
     */
    amqpPublishLeaseMs: number;
    /**
     * Jobs one endpoint may have in RabbitMQ at once, across workers: enough to keep its connections busy, few
     * enough that a hanging endpoint's backlog stays in PostgreSQL instead of cycling through the delay queues.
     */
    amqpQueuedPerEndpoint: number;
  };
  /** FRAUD_CHECKS=off skips the fraud decision on payments: for benchmarks measuring its cost only. */
  fraudChecks: boolean;
}

function num(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return value;
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const value = num(env, name, fallback, min);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number >= ${min}, got "${env[name]}"`);
  return value;
}

function rate(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = num(env, name, fallback);
  if (value > 1) throw new Error(`${name} must be between 0 and 1`);
  return value;
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

// "true" trusts every hop (only behind a proxy that overwrites X-Forwarded-For), a number trusts that
// many hops, anything else is a comma-separated list of proxy addresses or CIDR ranges.
function trustProxy(raw: string | undefined): Config['trustProxy'] {
  if (!raw || raw === 'false') return false;
  if (raw === 'true') return true;
  if (!/^\d+$/.test(raw)) return raw;
  const hops = Number(raw);
  return (_address, hop) => hop < hops;
}

// Only a proxy that always sets this header (and drops what a client sent in it) may be trusted with it.
function requestIdHeader(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^[A-Za-z0-9-]{1,64}$/.test(raw)) throw new Error(`REQUEST_ID_HEADER must be a header name, got "${raw}"`);
  return raw.toLowerCase();
}

// Seconds before each attempt, the first included: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
const WEBHOOK_RETRY_SCHEDULE = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];

function retrySchedule(raw: string | undefined): number[] {
  const seconds = raw ? raw.split(',').map(Number) : WEBHOOK_RETRY_SCHEDULE;
  if (!seconds.length || seconds.some((s) => !Number.isFinite(s) || s < 0))
    throw new Error(`WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, got "${raw}"`);
  return seconds.map((s) => s * 1000);
}

function webhookTransport(env: NodeJS.ProcessEnv): 'amqp' | 'postgres' {
  const chosen = env.WEBHOOK_TRANSPORT || (env.AMQP_URL ? 'amqp' : 'postgres');
  if (chosen !== 'amqp' && chosen !== 'postgres')
    throw new Error(`WEBHOOK_TRANSPORT must be amqp or postgres, got "${chosen}"`);
  if (chosen === 'amqp' && !env.AMQP_URL) throw new Error('WEBHOOK_TRANSPORT=amqp needs AMQP_URL');
  return chosen;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = num(env, 'PORT', 4000);
  const host = env.HOST || '127.0.0.1';
  const latencyMs = num(env, 'PROCESSOR_LATENCY_MS', 0);
  const failureRate = rate(env, 'PROCESSOR_FAILURE_RATE', 0);
  const lostResponseRate = rate(env, 'PROCESSOR_LOST_RESPONSE_RATE', 0);
  return {
    port,
    host,
    publicUrl: (env.PUBLIC_URL || `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`).replace(/\/$/, ''),
    publicUrlConfigured: Boolean(env.PUBLIC_URL),
    dataDir: resolve(env.DATA_DIR || '.data'),
    dashboardDir: resolve(env.DASHBOARD_DIR || 'dist/dashboard'),
    databaseUrl: optional(env, 'DATABASE_URL'),
    databaseReplicaUrl: optional(env, 'DATABASE_REPLICA_URL'),
    replicaMaxLagMs: num(env, 'DATABASE_REPLICA_MAX_LAG_MS', 5_000, 1),
    replicaPollMs: num(env, 'DATABASE_REPLICA_POLL_MS', 5, 1),
    appDbRole: env.APP_DB_ROLE || 'payforward_app',
    appDbPassword: env.APP_DB_PASSWORD || 'payforward_app',
    workerDbRole: env.WORKER_DB_ROLE || 'payforward_worker',
    workerDbPassword: env.WORKER_DB_PASSWORD || 'payforward_worker',
    embeddedPgPort: num(env, 'EMBEDDED_PG_PORT', 54329, 1),
    redisUrl: optional(env, 'REDIS_URL'),
    amqpUrl: optional(env, 'AMQP_URL'),
    platformApiKey: optional(env, 'PLATFORM_API_KEY'),
    vaultKek: optional(env, 'VAULT_KEK'),
    vaultFingerprintKey: optional(env, 'VAULT_FINGERPRINT_KEY'),
    jwtSecret: optional(env, 'JWT_SECRET'),
    auditSigningKey: optional(env, 'AUDIT_SIGNING_KEY'),
    auditPublicKeys: (env.AUDIT_PUBLIC_KEYS ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    auditCheckpointIntervalMs: num(env, 'AUDIT_CHECKPOINT_INTERVAL_MS', 300_000, 10),
    logLevel: env.LOG_LEVEL || 'info',
    batchMaxConcurrency: num(env, 'BATCH_MAX_CONCURRENCY', 2, 1),
    batchMaxSize: num(env, 'BATCH_MAX_SIZE', 64, 1),
    dbPoolSize: num(env, 'DB_POOL_SIZE', 12, 2),
    dbReadPoolSize: num(env, 'DB_READ_POOL_SIZE', 4, 1),
    databaseAnswerTimeoutMs: num(env, 'DATABASE_ANSWER_TIMEOUT_MS', 5_000, 0),
    webConcurrency: wholeNumber(env, 'WEB_CONCURRENCY', 1, 1),
    apiProcessStartTimeoutMs: num(env, 'API_PROCESS_START_TIMEOUT_MS', 120_000, 1_000),
    processors: Object.fromEntries(
      SIMULATED_PROCESSORS.map((name) => {
        const prefix = name.toUpperCase();
        return [
          name,
          {
            latencyMs: num(env, `${prefix}_LATENCY_MS`, latencyMs),
            failureRate: rate(env, `${prefix}_FAILURE_RATE`, failureRate),
            lostResponseRate: rate(env, `${prefix}_LOST_RESPONSE_RATE`, lostResponseRate),
          },
        ];
      }),
    ) as Config['processors'],
    processorTimeoutMs: num(env, 'PROCESSOR_TIMEOUT_MS', 15_000, 1),
    recoveryIntervalMs: num(env, 'RECOVERY_INTERVAL_MS', 15_000, 10),
    recoveryAfterSeconds: num(env, 'RECOVERY_AFTER_SECONDS', 60, 0),
    rateLimitPerKey: num(env, 'RATE_LIMIT_PER_KEY', 1000, 1),
    rateLimitPerTenant: num(env, 'RATE_LIMIT_PER_TENANT', 2000, 1),
    rateLimitWindowMs: num(env, 'RATE_LIMIT_WINDOW_MS', 1000, 1),
    rateLimitPerAddress: num(env, 'RATE_LIMIT_PER_ADDRESS', 2000, 1),
    authFailuresPerAddress: num(env, 'AUTH_FAILURES_PER_ADDRESS', 20, 1),
    authFailureWindowMs: num(env, 'AUTH_FAILURE_WINDOW_MS', 60_000, 1),
    trustProxy: trustProxy(env.TRUST_PROXY),
    requestIdHeader: requestIdHeader(optional(env, 'REQUEST_ID_HEADER')),
    apiKeyCacheTtlMs: num(env, 'API_KEY_CACHE_TTL_MS', 5_000, 0),
    metricsToken: optional(env, 'METRICS_TOKEN'),
    metricsPort: env.METRICS_PORT ? num(env, 'METRICS_PORT', 0, 1) : undefined,
    metricsHost: env.METRICS_HOST || '127.0.0.1',
    paymentMethodRateLimitPerKey: num(env, 'PAYMENT_METHOD_RATE_LIMIT_PER_KEY', 500, 1),
    paymentMethodRateLimitPerTenant: num(env, 'PAYMENT_METHOD_RATE_LIMIT_PER_TENANT', 1000, 1),
    paymentMethodRateLimitWindowMs: num(env, 'PAYMENT_METHOD_RATE_LIMIT_WINDOW_MS', 60_000, 1),
    bodyLimitBytes: num(env, 'BODY_LIMIT_BYTES', 64 * 1024, 1024),
    authorizationExpiryDays: num(env, 'AUTHORIZATION_EXPIRY_DAYS', 7, 0),
    idempotencyTtlHours: num(env, 'IDEMPOTENCY_TTL_HOURS', 24, 1),
    requestLogRetentionDays: num(env, 'REQUEST_LOG_RETENTION_DAYS', 30, 1),
    requestLogFlushMs: num(env, 'REQUEST_LOG_FLUSH_MS', 500, 10),
    settlementIntervalMs: num(env, 'SETTLEMENT_INTERVAL_MS', 60_000, 10),
    payoutRailIntervalMs: num(env, 'PAYOUT_RAIL_INTERVAL_MS', 5_000, 10),
    reportIntervalMs: num(env, 'REPORT_INTERVAL_MS', 5_000, 10),
    cardDataRetentionDays: num(env, 'CARD_DATA_RETENTION_DAYS', 395, 1),
    idempotencyOwnerTimeoutSeconds: num(env, 'IDEMPOTENCY_OWNER_TIMEOUT_SECONDS', 5, 2),
    seedDemoTenant: env.SEED_DEMO_TENANT !== 'false',
    demoSeedDays: num(env, 'DEMO_SEED_DAYS', 30, 0),
    workerRetryBaseMs: num(env, 'WORKER_RETRY_BASE_MS', 5_000, 1),
    eventStreamHeartbeatMs: num(env, 'EVENT_STREAM_HEARTBEAT_MS', 15_000, 10),
    eventStreamMaxPerTenant: num(env, 'EVENT_STREAM_MAX_PER_TENANT', 10, 1),
    eventStreamLeaseMs: num(env, 'EVENT_STREAM_LEASE_MS', 30_000, 300),
    workerRetryMaxMs: num(env, 'WORKER_RETRY_MAX_MS', 600_000, 1),
    smtpUrl: optional(env, 'SMTP_URL'),
    mailFrom: env.MAIL_FROM || 'PayForward <no-reply@payforward.invalid>',
    production: env.NODE_ENV === 'production',
    webhooks: {
      allowPrivate: parseCidrList(env.WEBHOOK_ALLOW_PRIVATE),
      retryScheduleMs: retrySchedule(env.WEBHOOK_RETRY_SCHEDULE),
      timeoutMs: num(env, 'WEBHOOK_TIMEOUT_MS', 15_000, 1),
      disableAfterMs: num(env, 'WEBHOOK_DISABLE_AFTER_HOURS', 120, 0) * 3_600_000,
      rotationGraceSeconds: num(env, 'WEBHOOK_SECRET_ROTATION_SECONDS', 86_400, 0),
      concurrencyPerEndpoint: num(env, 'WEBHOOK_ENDPOINT_CONCURRENCY', 16, 1),
      ratePerEndpoint: num(env, 'WEBHOOK_ENDPOINT_RATE', 500, 1),
      concurrency: num(env, 'WEBHOOK_CONCURRENCY', 512, 1),
      transport: webhookTransport(env),
      amqpPrefix: env.WEBHOOK_AMQP_PREFIX || 'payforward.webhooks',
      amqpLeaseMs: num(env, 'WEBHOOK_AMQP_LEASE_SECONDS', 300, 1) * 1000,
      amqpPublishLeaseMs: num(env, 'WEBHOOK_AMQP_PUBLISH_LEASE_SECONDS', 10, 1) * 1000,
      amqpQueuedPerEndpoint: num(
        env,
        'WEBHOOK_AMQP_QUEUED_PER_ENDPOINT',
        8 * num(env, 'WEBHOOK_ENDPOINT_CONCURRENCY', 16, 1),
        1,
      ),
    },
    fraudChecks: env.FRAUD_CHECKS !== 'off',
  };
}
