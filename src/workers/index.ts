import type { FastifyBaseLogger } from 'fastify';
import type { Platform } from '../platform.js';
import { OutboxRelay } from './outbox-relay.js';

interface Loop {
  name: string;
  everyMs: number;
  run: () => Promise<unknown>;
}

/**
 * Background work: expiring uncaptured authorizations, resuming payments and refunds a crash
 * left mid-way, settling due funds, moving payouts along the bank rail, opening and deciding
 * disputes, purging expired idempotency keys and relaying the event outbox. Each loop runs
 * one pass at a time; every pass is safe to repeat and to run on several workers at once.
 */
export function startWorkers(platform: Platform, log: FastifyBaseLogger) {
  const relay = platform.config.amqpUrl ? new OutboxRelay(platform.sql, platform.config.amqpUrl) : undefined;
  const loops: Loop[] = [
    { name: 'expire-authorizations', everyMs: 30_000, run: () => platform.payments.expireAuthorizations() },
    {
      name: 'recover-payments',
      everyMs: platform.config.recoveryIntervalMs,
      run: () => platform.payments.recoverStuckPayments(platform.config.recoveryAfterSeconds),
    },
    {
      name: 'recover-refunds',
      everyMs: platform.config.recoveryIntervalMs,
      run: () => platform.refunds.recoverStuckRefunds(platform.config.recoveryAfterSeconds),
    },
    // Frequent, so a test-card dispute opens (and an answered one is decided) shortly after capture.
    { name: 'dispute-intake', everyMs: 2_000, run: () => platform.disputes.intake() },
    { name: 'dispute-review', everyMs: 5_000, run: () => platform.disputes.review() },
    { name: 'settlement', everyMs: platform.config.settlementIntervalMs, run: () => platform.settlements.run() },
    { name: 'payout-rail', everyMs: platform.config.payoutRailIntervalMs, run: () => platform.payouts.advanceRail() },
    // Reconciles yesterday's processor reports once they are final; a pass finding them done costs one query per
    // processor.
    { name: 'reconciliation', everyMs: 600_000, run: () => platform.reconciliation.run() },
    {
      name: 'purge-idempotency-keys',
      everyMs: 300_000,
      run: () =>
        platform.sql`SELECT worker_purge_idempotency_keys(${`${platform.config.idempotencyTtlHours} hours`}::interval)`,
    },
    ...(relay ? [{ name: 'outbox-relay', everyMs: 200, run: () => relay.relayOnce() }] : []),
  ];
  let stopping = false;
  const running = new Set<Promise<unknown>>();
  const timers = loops.map((loop) => {
    let busy = false;
    return setInterval(() => {
      if (busy || stopping) return;
      busy = true;
      const pass = loop
        .run()
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
      await Promise.allSettled([...running]);
      await relay?.close();
    },
  };
}
