import type { Config } from '../../config.js';
import type { Database } from '../../bootstrap.js';
import { connect } from '../../db/index.js';
import { createPlatform, type Secrets } from '../../platform.js';
import { ReplayClock, seedDemoHistory, type SeedOptions, type SeedSummary } from './seed.js';

/**
 * Seeds through a platform of its own whose services run on the replay clock; the serving platform keeps
 * the real one. It holds the worker role too: the nightly settlement, payout and dispute passes are the workers'.
 */
export async function seedDemoTenant(
  config: Config,
  database: Database,
  secrets: Secrets,
  options: SeedOptions,
): Promise<SeedSummary> {
  const clock = new ReplayClock();
  const platform = createPlatform(config, database.appUrl, secrets, {
    processMetrics: false,
    workerDatabaseUrl: database.workerUrl,
    now: clock.now,
  });
  try {
    return await seedDemoHistory(platform, clock, options);
  } finally {
    await platform.close();
  }
}

/**
 * Whether a worker process is connected to this database, as a sentence, or null. Its passes run on today's
 * clock: alongside the seeder they would settle the history's funds and decide its disputes at today's date.
 */
export async function workersRunning(database: Database): Promise<string | null> {
  const admin = connect(database.adminUrl, { max: 1, applicationName: 'payforward-seed-demo' });
  try {
    const [{ connections }] = await admin<{ connections: number }[]>`
      SELECT count(*)::int AS connections FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'payforward-worker'`;
    return connections ? `${connections} worker connection(s) are open on this database` : null;
  } finally {
    await admin.end();
  }
}

export function describeSeed(summary: SeedSummary): string {
  return (
    `${summary.days} days: ${summary.payments} payments (${summary.succeeded} approved, ${summary.declined} declined), ` +
    `${summary.customers} customers with saved cards, ${summary.refunds} refunds, ${summary.disputes} disputes, ` +
    `${summary.reviews} fraud reviews closed, ${summary.settlements} settlements, in ${(summary.ms / 1000).toFixed(1)} s`
  );
}
