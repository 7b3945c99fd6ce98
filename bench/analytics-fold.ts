import { connect } from '../src/db/index.js';
import { foldAnalyticsLogs } from '../src/modules/analytics/service.js';

export const FOLD_APPLICATION = 'payforward-bench-fold';

/**
 * The worker's `fold-analytics` loop (src/workers/index.ts), for benches that run the API without its workers: the
 * payment triggers only log their changes (migration 040), and what moving them into the rollups costs PostgreSQL
 * belongs to the rollups' cost as much as the triggers do.
 */
export function startAnalyticsFolds(databaseUrl: string, everyMs = 500) {
  const sql = connect(databaseUrl, { max: 1, applicationName: FOLD_APPLICATION });
  let folded = 0;
  let failure: unknown;
  let pass: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    pass = pass.then(async () => {
      try {
        folded += await foldAnalyticsLogs(sql);
      } catch (error) {
        failure ??= error;
      }
    });
  }, everyMs);
  return {
    /** Stops the loop after a last fold; how many changes it folded in all. */
    async stop(): Promise<number> {
      clearInterval(timer);
      await pass;
      try {
        folded += await foldAnalyticsLogs(sql);
      } finally {
        await sql.end();
      }
      if (failure) throw failure;
      return folded;
    },
  };
}
