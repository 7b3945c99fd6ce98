import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly paymentsByStatus = new Counter({
    name: 'payments_total',
    help: 'Payments entering each status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'write_batch_size',
    help: 'Items per micro-batch write transaction',
    buckets: [1, 2, 5, 10, 25, 50, 100, 200, 400],
    registers: [this.registry],
  });
  readonly workerItemFailures = new Counter({
    name: 'worker_item_failures_total',
    help: 'Worker items (payments, payouts, settlement groups…) whose processing failed and was put off for a retry',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  readonly requestLogsDropped = new Counter({
    name: 'request_logs_dropped_total',
    help: 'Request log rows not kept: the buffer was full while the database was away, or the write failed',
    registers: [this.registry],
  });

  readonly eventStreamSlotFallbacks = new Counter({
    name: 'event_stream_slot_fallbacks_total',
    help: "Event streams opened or renewed without the shared per-tenant count (its store did not answer): bounded by this process's count only",
    registers: [this.registry],
  });
  readonly rateLimitLocalDecisions = new Counter({
    name: 'rate_limit_local_decisions_total',
    help: 'Rate-limit decisions counted in process because the configured Redis did not answer',
    registers: [this.registry],
  });

  readonly paymentMethodRateLimited = new Counter({
    name: 'payment_method_rate_limited_total',
    help: 'Card tokenizations (saved or inline in a payment) refused by the payment-method rate limit',
    registers: [this.registry],
  });

  readonly processorUnknownOutcomes = new Counter({
    name: 'processor_unknown_outcomes_total',
    help: 'Processor calls that timed out or threw (the processor may have acted): kept pending and replayed',
    labelNames: ['processor', 'operation'] as const,
    registers: [this.registry],
  });

  readonly webhookDeliveryLag = new Histogram({
    name: 'webhook_delivery_lag_seconds',
    help: "From an event's commit to the first attempt to deliver it to an endpoint",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly webhookAttempts = new Counter({
    name: 'webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome (succeeded, failed, timeout, refused)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookQueueDepth = new Gauge({
    name: 'webhook_queue_depth',
    help: 'Webhook deliveries pending (due now or waiting for a retry), as last counted by this worker',
    registers: [this.registry],
  });

  readonly webhookBrokerMessages = new Gauge({
    name: 'webhook_broker_messages',
    help: 'RabbitMQ transport: delivery jobs in the work queue (ready) and in the retry delay queues (delayed)',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });

  readonly fraudDecisions = new Counter({
    name: 'fraud_decisions_total',
    help: 'Fraud decisions by action and by the rule (or allow-list) that decided ("none": no rule matched)',
    labelNames: ['action', 'rule'] as const,
    registers: [this.registry],
  });

  readonly fraudShadowMatches = new Counter({
    name: 'fraud_shadow_matches_total',
    help: 'Matches of shadow-mode fraud rules (evaluated and logged, never acted on)',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });

  readonly fraudVelocityDegraded = new Counter({
    name: 'fraud_velocity_degraded_total',
    help: 'Fraud decisions whose velocity features came from the in-process store because Redis did not answer',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Set by the worker's fraud-metrics loop from the database (FraudService.refreshGauges). */
  readonly fraudReviewBacklog = new Gauge({
    name: 'fraud_review_backlog',
    help: 'Open fraud reviews, all tenants',
    registers: [this.registry],
  });

  readonly fraudRateBasisPoints = new Gauge({
    name: 'fraud_rate_basis_points',
    help: 'Amount of payments labelled fraud per 10,000 of captured volume over the last 30 days, all tenants',
    registers: [this.registry],
  });

  readonly dbReads = new Counter({
    name: 'db_reads_total',
    help: 'Stale-tolerant reads (lists, search, analytics) by the server that served them and why',
    labelNames: ['target', 'reason'] as const,
    registers: [this.registry],
  });

  readonly replicaLag = new Gauge({
    name: 'db_replica_lag_seconds',
    help: 'How long ago the primary had WAL the read replica has not replayed yet (-1 while it is unreachable)',
    registers: [this.registry],
  });

  readonly replicaServing = new Gauge({
    name: 'db_replica_serving',
    help: '1 while the read replica is reachable and within DATABASE_REPLICA_MAX_LAG_MS, else 0',
    registers: [this.registry],
  });
  /**
   * The text /metrics serves: this process's registry, or, in an API process of a WEB_CONCURRENCY cluster, the sum
   * the primary gathers from every process (src/cluster.ts), so that a scrape landing on any of them sees them all.
   */
  collect: () => Promise<string> = () => this.registry.metrics();

  constructor(collectProcessMetrics = true) {
    if (collectProcessMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
