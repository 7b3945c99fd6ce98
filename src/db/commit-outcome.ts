import postgres from 'postgres';
import type { Sql } from './index.js';

/**
 * The connection was lost after COMMIT was sent and before its answer came back: the transaction
 * may have committed or not. Whoever wrote must find out (settleSession, then read what it wrote)
 * before answering, and never guess either way.
 */
export class CommitOutcomeUnknown extends Error {
  constructor(
    readonly backendPid: number,
    cause: unknown,
  ) {
    super('The connection was lost before COMMIT was answered: the transaction may or may not have committed.', {
      cause,
    });
  }
}

/**
 * The error a pipelined transaction (BEGIN … COMMIT sent at once) failed with. When the server
 * answered an error, the transaction rolled back and that error is thrown. When COMMIT itself got
 * no answer because the connection failed after it went out (postgres.js sets a query's `state` to
 * its session's backend key when it writes the query), the outcome is unknown.
 */
export function transactionFailure(commit: object, commitFailed: boolean, reasons: unknown[]): unknown {
  const pid = (commit as { state?: { pid?: number | null } }).state?.pid;
  const answered = reasons.some((reason) => reason instanceof postgres.PostgresError);
  return commitFailed && pid && !answered ? new CommitOutcomeUnknown(pid, reasons[0]) : reasons[0];
}

/**
 * Waits until the session of an ambiguous commit has no transaction any more, so that what it
 * wrote can be read with certainty. A session whose client is gone may still be executing, or
 * sitting in its open transaction until it notices: it is terminated (an open transaction rolls
 * back; a COMMIT already under way completes first, as termination waits for it) unless it is
 * idle, which means its transaction is over. The session is found by process id, which the
 * server does not reuse until that process has exited.
 */
export async function settleSession(sql: Sql, pid: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let terminated = false; ;) {
    const [session] = await sql<{ state: string | null }[]>`SELECT state FROM pg_stat_activity WHERE pid = ${pid}`;
    if (!session || session.state === 'idle') return;
    if (!terminated) {
      await sql`SELECT pg_terminate_backend(${pid}::integer, 5000)`;
      terminated = true;
    }
    if (Date.now() > deadline) throw new Error(`session ${pid} of an ambiguous commit did not end in time`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
