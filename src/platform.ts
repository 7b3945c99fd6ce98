import { Expander } from './modules/expand/expand.js';
import { ClientSecrets } from './http/client-secret.js';
import { CheckoutService } from './modules/checkout/service.js';
import { Redis } from 'ioredis';
import type { Config } from './config.js';
import { systemClock, type Clock } from './lib/time.js';
import { appDatabaseUrl as asAppRole, connect, noWorkerConnection, type Sql } from './db/index.js';
import type { MicroBatcher } from './db/batcher.js';
import { primaryReads, ReadRouter, type Reads } from './db/replica.js';
import { ReadBatcher } from './db/read-batch.js';
import { Authenticator } from './http/auth.js';
import { IdempotencyStore } from './http/idempotency.js';
import { Metrics } from './http/metrics.js';
import { InProcessRateLimiter, ResilientRateLimiter, type RateLimiter } from './http/rate-limit.js';
import { ApiKeyService } from './modules/api-keys/service.js';
import { AuditService } from './modules/audit/service.js';
import { BankAccountService } from './modules/bank-accounts/service.js';
import { CustomerService } from './modules/customers/service.js';
import { SearchService } from './modules/search/service.js';
import { ConnectorRouter } from './modules/connectors/router.js';
import { SimulatedSettlementReports } from './modules/connectors/settlement-reports.js';
import { EventService } from './modules/events/service.js';
import { EventFeed } from './modules/events/stream.js';
import { PostgresStreamSlotStore, RedisStreamSlotStore, StreamSlots } from './modules/events/stream-slots.js';
import { PaymentMethodService } from './modules/payment-methods/service.js';
import { createPaymentReader, createPaymentWriter, type PaymentWrite } from './modules/payments/repo.js';
import { PaymentService } from './modules/payments/service.js';
import { LedgerService } from './modules/ledger/service.js';
import { BalanceHistory } from './modules/ledger/history.js';
import { PricingService } from './modules/pricing/service.js';
import { RefundService } from './modules/refunds/service.js';
import { DisputeService } from './modules/disputes/service.js';
import { FraudEngine } from './modules/fraud/engine.js';
import { FraudService } from './modules/fraud/service.js';
import { InProcessVelocityStore, RedisVelocityStore, ResilientVelocityStore } from './modules/fraud/velocity.js';
import { PayoutService } from './modules/payouts/service.js';
import { SettlementService } from './modules/settlements/service.js';
import { ReconciliationService } from './modules/reconciliation/service.js';
import { AnalyticsService } from './modules/analytics/service.js';
import { RequestLogRecorder } from './modules/request-logs/recorder.js';
import { RequestLogService } from './modules/request-logs/service.js';
import { DEFAULT_REPORT_OPTIONS, ReportService } from './modules/reports/service.js';
import { CaseService } from './modules/cases/service.js';
import { CardDataRetention } from './modules/payment-methods/retention.js';
import { TenantService } from './modules/tenants/service.js';
import { ThreeDSecure } from './modules/three-d-secure/tokens.js';
import { CardVault, parseKek } from './modules/vault/vault.js';
import { Mailer } from './modules/users/mailer.js';
import { UserService } from './modules/users/service.js';
import { SecurityEvents } from './modules/users/security-events.js';
import { PasskeyService } from './modules/users/passkeys.js';
import { ExpiredSessionPurge, PostgresSessionStore, RedisSessionStore } from './modules/sessions/store.js';
import { WebhookService } from './modules/webhooks/service.js';
import { systemResolver } from './modules/webhooks/ssrf.js';

/** Secrets the platform cannot run without; resolved by bootstrap (env or the local data folder). */
export interface Secrets {
  platformApiKey: string;
  vaultKeks: string[];
  vaultFingerprintKey: string;
  jwtSecret: string;
  /** AUDIT_SIGNING_KEY: the Ed25519 seed the audit checkpoints are signed with. */
  auditSigningKey: string;
  /** METRICS_TOKEN, or the development default's generated one (see resolveSecrets). */
  metricsToken?: string;
}

export interface Platform {
  config: Config;
  sql: Sql;
  replica: Sql;
  /** The primary's pool for one-round-trip reads (payment retrieves, list pages, balances): the app role's too. */
  readPool: Sql;
  /** Where stale-tolerant reads go: the replica unless the client's last write is not replayed there yet. */
  reads: Reads;
  /** The router behind `reads` when DATABASE_REPLICA_URL is set. */
  readRouter?: ReadRouter;
  /** The worker role's pool, for the cross-tenant worker_* scans; a refusing stand-in in an API-only process. */
  workerSql: Sql;
  redis?: Redis;
  metrics: Metrics;
  authenticator: Authenticator;
  idempotency: IdempotencyStore;
  rateLimiter: RateLimiter;
  router: ConnectorRouter;
  writer: MicroBatcher<PaymentWrite, boolean>;
  threeDSecure: ThreeDSecure;
  clientSecrets: ClientSecrets;
  checkout: CheckoutService;
  tenants: TenantService;
  apiKeys: ApiKeyService;
  paymentMethods: PaymentMethodService;
  payments: PaymentService;
  refunds: RefundService;
  disputes: DisputeService;
  events: EventService;
  /** The live event stream's fan-out in this process (GET /v1/events/stream). */
  eventFeed: EventFeed;
  /** Without Redis, sessions live in PostgreSQL and the worker purges the expired ones. */
  sessionPurge?: ExpiredSessionPurge;
  pricing: PricingService;
  ledger: LedgerService;
  /** Balances at past instants (GET /v1/balance?at=) and the worker's hourly snapshots behind them. */
  balanceHistory: BalanceHistory;
  payouts: PayoutService;
  bankAccounts: BankAccountService;
  customers: CustomerService;
  /** `expand[]` on retrieve and list answers. */
  expander: Expander;
  search: SearchService;
  settlements: SettlementService;
  reconciliation: ReconciliationService;
  requestLogRecorder: RequestLogRecorder;
  requestLogs: RequestLogService;
  analytics: AnalyticsService;
  reports: ReportService;
  cases: CaseService;
  cardDataRetention: CardDataRetention;
  mailer: Mailer;
  users: UserService;
  passkeys: PasskeyService;
  webhooks: WebhookService;
  fraud: FraudEngine;
  fraudService: FraudService;
  audit: AuditService;
  /** The audit checkpoints' signing key (a worker signs with it). */
  auditSigningKey: string;
  close(): Promise<void>;
}

/**
 * Wires every service from configuration. `appDatabaseUrl` must name the non-privileged role;
 * `workerDatabaseUrl`, the worker role, only in a process that runs the background workers.
 */
export function createPlatform(
  config: Config,
  appDatabaseUrl: string,
  secrets: Secrets,
  // `clock` decides key expiry and rate-limit windows; tests move it instead of waiting.
  // `now` stamps what the money services record; the demo seeder replays past days through them with its own.
  options: { processMetrics?: boolean; clock?: () => number; workerDatabaseUrl?: string; now?: Clock } = {},
): Platform {
  const now = options.now ?? systemClock;
  const answerTimeoutMs = config.databaseAnswerTimeoutMs;
  const sql = connect(appDatabaseUrl, {
    max: config.dbPoolSize,
    applicationName: 'payforward-api',
    cachedPlans: true,
    answerTimeoutMs,
  });
  // Batched payment reads get a pool of their own: under a mixed load, reads and write batches must not queue for
  // each other's connections.
  const readSql = connect(appDatabaseUrl, {
    max: config.dbReadPoolSize,
    applicationName: 'payforward-api-reads',
    cachedPlans: true,
    answerTimeoutMs,
  });
  // Read batches (retrieves, balances, list pages) draw on the read pool: as many at once as it has connections.
  const batchedReads = new ReadBatcher(readSql, {
    maxConcurrency: config.dbReadPoolSize,
    maxSize: config.batchMaxSize,
  });
  // Whatever role the replica URL names, reads run as the application role, under row-level security.
  const replica = config.databaseReplicaUrl
    ? connect(asAppRole(config.databaseReplicaUrl, config), {
        max: 4,
        applicationName: 'payforward-replica',
        cachedPlans: true,
        // A replica that does not answer is skipped for the primary: waiting 10 s to find out would hold the read.
        connectTimeoutSeconds: 2,
        answerTimeoutMs,
      })
    : sql;
  const workerSql = options.workerDatabaseUrl
    ? connect(options.workerDatabaseUrl, { max: 3, applicationName: 'payforward-worker', answerTimeoutMs })
    : noWorkerConnection();
  const redis = config.redisUrl
    ? new Redis(config.redisUrl, {
        enableAutoPipelining: true,
        maxRetriesPerRequest: 2,
        lazyConnect: false,
        // A Redis that stops answering must not hold requests: the rate limiter counts in process instead.
        commandTimeout: 500,
      })
    : undefined;
  // ioredis reports every failed reconnection as an 'error' event, printed to stderr when nobody
  // listens. The outage shows instead in rate_limit_local_decisions_total (see ResilientRateLimiter).
  redis?.on('error', () => {});
  const metrics = new Metrics(options.processMetrics ?? true);
  const readRouter =
    replica !== sql
      ? new ReadRouter(sql, replica, {
          maxLagMs: config.replicaMaxLagMs,
          pollMs: config.replicaPollMs,
          primaryBatchedReads: batchedReads,
          onRead: (target, reason) => metrics.dbReads.inc({ target, reason }),
          onStatus: (status) => {
            metrics.replicaLag.set(status.state === 'down' || status.lag_ms === null ? -1 : status.lag_ms / 1000);
            metrics.replicaServing.set(status.state === 'up' ? 1 : 0);
          },
        })
      : undefined;
  const reads = readRouter ?? primaryReads(sql, batchedReads);
  const authenticator = new Authenticator(sql, {
    platformApiKey: secrets.platformApiKey,
    jwtSecret: secrets.jwtSecret,
    metricsToken: secrets.metricsToken ?? config.metricsToken,
    cacheTtlMs: config.apiKeyCacheTtlMs,
    listenUrl: appDatabaseUrl,
    clock: options.clock,
  });
  const router = ConnectorRouter.simulated(config, sql, (processor, operation) =>
    metrics.processorUnknownOutcomes.inc({ processor, operation }),
  );
  const vault = CardVault.fromEntries(secrets.vaultKeks, parseKek(secrets.vaultFingerprintKey));
  const batching = { maxConcurrency: config.batchMaxConcurrency, maxSize: config.batchMaxSize };
  const writer = createPaymentWriter(sql, batching, (size) => metrics.batchSize.observe(size));
  const reader = createPaymentReader(batchedReads);
  const idempotency = new IdempotencyStore(sql, vault, config.idempotencyOwnerTimeoutSeconds, batching);
  const threeDSecure = new ThreeDSecure(secrets.jwtSecret, config.publicUrl);
  const apiKeys = new ApiKeyService(sql, () => authenticator.forget());
  const tenants = new TenantService(sql, apiKeys, router.names(), () => authenticator.forget());
  const processorsFor = (tenantId: string) => tenants.processorsFor(tenantId);
  const customers = new CustomerService(sql, now, reads);
  const paymentMethods = new PaymentMethodService(sql, vault, router, processorsFor, customers, now);
  const pricing = new PricingService(sql);
  const ledger = new LedgerService(sql, now, reads, batchedReads);
  const settlementScheduleFor = (tenantId: string) => tenants.settlementScheduleFor(tenantId);
  const bankAccounts = new BankAccountService(sql, vault, now);
  const payouts = new PayoutService(sql, ledger, bankAccounts, workerSql, now, reads);
  const settlements = new SettlementService(sql, ledger, payouts, settlementScheduleFor, workerSql, now, reads);
  const mailer = new Mailer(config.smtpUrl, config.mailFrom, !config.production);
  // Sessions live in Redis when there is one (every API process sees a logout at once), else in PostgreSQL.
  const sessionStore = redis ? new RedisSessionStore(redis) : new PostgresSessionStore(sql);
  const securityEvents = new SecurityEvents(sql);
  const users = new UserService(sql, vault, mailer, sessionStore, securityEvents, {
    publicUrl: config.publicUrl,
    issuer: 'PayForward',
    clock: options.clock ?? Date.now,
  });
  const passkeys = new PasskeyService(sql, sessionStore, securityEvents, config.publicUrl);
  users.passkeys = passkeys;
  const fraudVelocity = redis
    ? new ResilientVelocityStore(new RedisVelocityStore(redis), new InProcessVelocityStore(), (reason) =>
        metrics.fraudVelocityDegraded.inc({ reason }),
      )
    : new InProcessVelocityStore();
  const fraud = new FraudEngine(
    sql,
    fraudVelocity,
    metrics,
    (pan, tenantId) => vault.fingerprint(pan, tenantId),
    appDatabaseUrl,
  );
  const payments = new PaymentService({
    sql,
    customers,
    workerSql,
    writer,
    reader,
    paymentMethods,
    router,
    processorsFor,
    settlementScheduleFor,
    pricing,
    ledger,
    threeDSecure,
    metrics,
    config,
    fraud: config.fraudChecks ? fraud : undefined,
    now,
    reads,
  });
  const requestLogRecorder = new RequestLogRecorder(sql, {
    flushIntervalMs: config.requestLogFlushMs,
    maxBuffered: 50_000,
    batchSize: 2_000,
    onDropped: (count) => metrics.requestLogsDropped.inc(count),
  });
  const eventFeed = new EventFeed(
    sql,
    appDatabaseUrl,
    { heartbeatMs: config.eventStreamHeartbeatMs, maxPerTenant: config.eventStreamMaxPerTenant },
    new StreamSlots(
      redis ? new RedisStreamSlotStore(redis) : new PostgresStreamSlotStore(sql),
      { maxPerTenant: config.eventStreamMaxPerTenant, leaseMs: config.eventStreamLeaseMs },
      () => metrics.eventStreamSlotFallbacks.inc(),
    ),
  );
  const clientSecrets = new ClientSecrets(secrets.jwtSecret);
  const refunds = new RefundService(sql, router, pricing, ledger, workerSql, now, reads, batching);
  return {
    config,
    sql,
    replica,
    readPool: readSql,
    reads,
    readRouter,
    workerSql,
    redis,
    metrics,
    authenticator,
    idempotency,
    rateLimiter: redis
      ? new ResilientRateLimiter(redis, () => metrics.rateLimitLocalDecisions.inc(), options.clock)
      : new InProcessRateLimiter(options.clock),
    router,
    writer,
    threeDSecure,
    clientSecrets,
    checkout: new CheckoutService(
      sql,
      payments,
      apiKeys,
      clientSecrets,
      secrets.jwtSecret,
      config.publicUrl,
      workerSql,
      options.clock,
    ),
    tenants,
    apiKeys,
    paymentMethods,
    payments,
    refunds,
    disputes: new DisputeService(sql, router, pricing, ledger, workerSql, now, reads),
    events: new EventService(sql, reads),
    eventFeed,
    sessionPurge: redis ? undefined : new ExpiredSessionPurge(workerSql, options.clock ?? Date.now),
    pricing,
    ledger,
    balanceHistory: new BalanceHistory(sql, workerSql, now),
    payouts,
    bankAccounts,
    customers,
    expander: new Expander({ payments, refunds, customers, paymentMethods, ledger }),
    search: new SearchService(reads),
    settlements,
    fraud,
    fraudService: new FraudService(sql, fraud, payments, refunds, workerSql, metrics, now),
    reconciliation: new ReconciliationService(
      sql,
      new SimulatedSettlementReports(workerSql),
      router.names(),
      workerSql,
    ),
    requestLogRecorder,
    requestLogs: new RequestLogService(reads),
    analytics: new AnalyticsService(reads, sql, options.clock),
    reports: new ReportService(
      sql,
      workerSql,
      {
        active: vault.activeKekId,
        all: vault.kekIds(),
        created: vault.kekIds().map((id) => vault.kekCreatedAt(id)),
      },
      DEFAULT_REPORT_OPTIONS,
      reads,
    ),
    cases: new CaseService(sql),
    cardDataRetention: new CardDataRetention(sql, workerSql, config.cardDataRetentionDays),
    mailer,
    users,
    passkeys,
    webhooks: new WebhookService(sql, vault, {
      allowPrivate: config.webhooks.allowPrivate,
      rotationGraceSeconds: config.webhooks.rotationGraceSeconds,
      resolver: systemResolver,
    }),
    audit: new AuditService(sql),
    auditSigningKey: secrets.auditSigningKey,
    async close() {
      mailer.close();
      await writer.idle();
      await batchedReads.idle();
      await requestLogRecorder.close();
      await idempotency.idle();
      await authenticator.stopListening();
      await eventFeed.stop();
      await fraud.stopListening();
      // QUIT would wait for a Redis that is away; an unreachable one is simply dropped.
      if (redis?.status === 'ready') await redis.quit().catch(() => {});
      else redis?.disconnect();
      readRouter?.close();
      if (replica !== sql) await replica.end({ timeout: 5 });
      await workerSql.end({ timeout: 5 });
      await readSql.end({ timeout: 5 });
      await sql.end({ timeout: 5 });
    },
  };
}

/**
 * Resolves true once the Redis client is connected, false after `ms` without it. An API process waits for it at
 * start so that its first requests are counted in Redis like the rest; a Redis that is down does not stop the start
 * (the limiters count in process until it is back).
 */
export function redisReady(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ready);
    };
    const onReady = () => settle(true);
    const timer = setTimeout(() => settle(false), ms);
    redis.once('ready', onReady);
  });
}
