import type { FastifyBaseLogger } from 'fastify';
import type { Platform } from '../platform.js';
import { WorkerItems, type ItemRunner } from './isolation.js';
import { OutboxRelay } from './outbox-relay.js';
import { WebhookDispatcher } from './webhook-delivery.js';
import { signAuditCheckpoints } from '../modules/audit/checkpoints.js';
import { foldAnalyticsLogs } from '../modules/analytics/service.js';

interface Loop {
  name: string;
  everyMs: number;
  /** One pass; items are the loop's own runner, which isolates each item and backs off failed ones. */
  run: (items: ItemRunner) => Promise<unknown>;
}

/**
 * Background work: expiring uncaptured authorizations, settling checkout sessions, resuming
 * payments and refunds a crash left mid-way, settling due funds, moving payouts along the bank
 * rail, opening and deciding disputes, purging expired idempotency keys and relaying the event outbox. Each loop runs
 * one pass at a time; every pass is safe to repeat and to run on several workers at once. Within a
 * pass each item (a payment, a payout, a tenant's settlement group, a processor's day…) runs on its
 * own: one that fails is logged, counted and retried with backoff while the others go on.
 */
export function startWorkers(platform: Platform, log: FastifyBaseLogger) {
  const relay = platform.config.amqpUrl ? new OutboxRelay(platform.workerSql, platform.config.amqpUrl) : undefined;
  const { sessionPurge } = platform;
  const loops: Loop[] = [
    {
      name: 'expire-authorizations',
      everyMs: 30_000,
      run: (items) => platform.payments.expireAuthorizations(100, items),
    },
    // Sessions expire (with their event) within seconds of their time; a paid session completes as its payment
    // commits, and the sweep catches the few that a crash in between left open.
    { name: 'checkout-sessions-expired', everyMs: 10_000, run: (items) => platform.checkout.settleExpired(100, items) },
    { name: 'checkout-sessions', everyMs: 300_000, run: (items) => platform.checkout.settleDue(100, items) },
    {
      name: 'recover-payments',
      everyMs: platform.config.recoveryIntervalMs,
      run: (items) => platform.payments.recoverStuckPayments(platform.config.recoveryAfterSeconds, 100, items),
    },
    {
      name: 'recover-refunds',
      everyMs: platform.config.recoveryIntervalMs,
      run: (items) => platform.refunds.recoverStuckRefunds(platform.config.recoveryAfterSeconds, 100, items),
    },
    { name: 'fraud-metrics', everyMs: 30_000, run: () => platform.fraudService.refreshGauges() },
    // Frequent, so a test-card dispute opens (and an answered one is decided) shortly after capture.
    { name: 'dispute-intake', everyMs: 2_000, run: (items) => platform.disputes.intake(100, items) },
    { name: 'dispute-review', everyMs: 5_000, run: (items) => platform.disputes.review(100, items) },
    {
      name: 'settlement',
      everyMs: platform.config.settlementIntervalMs,
      run: (items) => platform.settlements.run(new Date(), items),
    },
    {
      name: 'payout-rail',
      everyMs: platform.config.payoutRailIntervalMs,
      run: (items) => platform.payouts.advanceRail(new Date(), 100, items),
    },
    // Reconciles yesterday's processor reports once they are final; a pass finding them done costs one query per
    // processor.
    {
      name: 'reconciliation',
      everyMs: 600_000,
      run: (items) => platform.reconciliation.run(undefined, new Date(), items),
    },
    {
      name: 'reports',
      everyMs: platform.config.reportIntervalMs,
      run: (items) => platform.reports.runPending(new Date(), 20, items),
    },
    {
      name: 'report-schedules',
      everyMs: 60_000,
      run: (items) => platform.reports.runSchedules(new Date(), 100, items),
    },
    {
      name: 'card-data-retention',
      everyMs: 3_600_000,
      run: (items) => platform.cardDataRetention.run(new Date(), 500, items),
    },
    {
      name: 'purge-idempotency-keys',
      everyMs: 300_000,
      run: () =>
        platform.workerSql`SELECT worker_purge_idempotency_keys(${`${platform.config.idempotencyTtlHours} hours`}::interval)`,
    },
    {
      name: 'purge-request-logs',
      everyMs: 300_000,
      run: () =>
        platform.workerSql`SELECT worker_purge_request_logs(${`${platform.config.requestLogRetentionDays} days`}::interval, 10000)`,
    },
    // Payment and attempt changes the triggers logged (migrations 040, 043), moved into the rollups: readers add what
    // is still logged, so this keeps their reads short, not their figures right.
    { name: 'fold-analytics', everyMs: 500, run: () => foldAnalyticsLogs(platform.workerSql) },
    // Hourly balance snapshots, so GET /v1/balance?at= reads an hour of ledger movements at most.
    {
      name: 'balance-snapshots',
      everyMs: 300_000,
      run: (items) => platform.balanceHistory.snapshot(new Date(), items),
    },
    // Past hours' rollup rows, one per writing session, folded into one per key: reads stay one row per hour.
    {
      name: 'compact-analytics',
      everyMs: 600_000,
      run: () => platform.workerSql`SELECT worker_compact_analytics(date_trunc('hour', now()) - interval '1 hour')`,
    },
    // Signed heads of every audit chain that moved: cutting entries off a chain's end no longer goes unnoticed.
    {
      name: 'audit-checkpoint',
      everyMs: platform.config.auditCheckpointIntervalMs,
      run: (items) => signAuditCheckpoints(platform.workerSql, platform.auditSigningKey, { items }),
    },
    ...(relay ? [{ name: 'outbox-relay', everyMs: 200, run: () => relay.relayOnce() }] : []),
    ...(sessionPurge ? [{ name: 'purge-sessions', everyMs: 60_000, run: () => sessionPurge.run() }] : []),
  ];
  // Webhook delivery runs its own loops: it claims again as soon as a slot frees, not on a timer.
  const webhooks = new WebhookDispatcher({ ...platform, log });
  webhooks.start();
  let stopping = false;
  const running = new Set<Promise<unknown>>();
  const retry = { baseDelayMs: platform.config.workerRetryBaseMs, maxDelayMs: platform.config.workerRetryMaxMs };
  const timers = loops.map((loop) => {
    const items = new WorkerItems(loop.name, retry, log, platform.metrics.workerItemFailures);
    let busy = false;
    return setInterval(() => {
      if (busy || stopping) return;
      busy = true;
      const pass = loop
        .run(items)
        .catch((error) => log.error({ err: error, worker: loop.name }, 'worker pass failed'))
        .finally(() => {
          busy = false;
          running.delete(pass);
        });
      running.add(pass);
    }, loop.everyMs);
  });
  return {
    async stop() {
      stopping = true;
      timers.forEach(clearInterval);
      await Promise.allSettled([...running, webhooks.stop()]);
      await relay?.close();
    },
  };
}
