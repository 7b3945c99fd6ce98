import { inScope, scopedRead, type Scope, type Sql, type Tx } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { idFloor } from '../../lib/ids.js';
import { systemClock, type Clock } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import { BALANCE_ACCOUNT_TYPES, toBalance, type BalanceRow } from './service.js';
import type { Balance } from './schemas.js';

const HOUR_MS = 3_600_000;
/** An hour is snapshotted once it is this old, when every posting stamped before it has committed (039). */
export const SNAPSHOT_DELAY_MS = 15 * 60_000;
/** How far back a scope's first pass fills in hours: the dashboard compares with the same time yesterday. */
export const SNAPSHOT_BACKFILL_HOURS = 48;
// A ledger transaction's id is made with the clock of its created_at (or the system's, when the two are within a
// second: src/lib/ids.ts) moments before it is stamped (after a refund's processor answer, for instance), so a range of
// created_at lies within this much of the same range of ids. Wider costs only the few rows read past each end.
const ID_MARGIN_MS = 5 * 60_000;
// After every stamp: the movements "from then on". Within what an id's ten time digits and PostgreSQL's ISO input hold.
const END_OF_TIME = new Date(Date.UTC(9999, 11, 31));

const floorHour = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;

/** A stored hour, or now's running balances: what a past balance is computed from. */
type Base = { snapshot: Date } | 'running';

/**
 * Balances at past instants. A balance at an instant counts every ledger movement stamped before it, so it equals the
 * running balance less every movement stamped at or after it; the hourly snapshots make that cost an hour of movements
 * at most (half an hour from the nearest snapshot) instead of everything since.
 */
export class BalanceHistory {
  constructor(
    private readonly sql: Sql,
    private readonly workerSql: Sql,
    private readonly now: Clock = systemClock,
  ) {}

  /**
   * The balance at `at` (Unix seconds): every movement whose balance transaction's `created` is `at` or earlier, as
   * GET /v1/balance would have shown it then. Refused for an instant in the future or before the tenant existed.
   */
  async at(scope: Scope, at: number): Promise<Balance> {
    const now = this.now().getTime();
    if (at * 1000 > now)
      throw ApiError.invalid('parameter_invalid', `'at' (${at}) is in the future; it must be a past instant.`, 'at');
    // `created` is in whole seconds: the instant's second belongs to it.
    const until = new Date((at + 1) * 1000);
    const [found] = await scopedRead(
      this.sql,
      scope,
      (tx) => tx<{ since: Date | null; before: Date | null; after: Date | null }[]>`
        SELECT
          least(
            (SELECT created_at FROM tenants WHERE id = ${scope.tenantId}),
            (SELECT created_at FROM ledger_transactions WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
              AND balance_type IS NOT NULL ORDER BY id LIMIT 1)) AS since,
          (SELECT max(at) FROM balance_snapshots WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
            AND at <= ${until}) AS before,
          (SELECT min(at) FROM balance_snapshots WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
            AND at > ${until}) AS after`,
    );
    // The tenant's history may begin before its creation (the demo seeder replays past days): either counts.
    if (!found.since || until.getTime() <= found.since.getTime())
      throw ApiError.invalid('parameter_invalid', `'at' (${at}) is before this account existed.`, 'at');
    const distance = (time: number) => Math.abs(time - until.getTime());
    const candidates: { base: Base; distance: number }[] = [
      { base: 'running', distance: distance(now) },
      ...[found.before, found.after].flatMap((time) =>
        time ? [{ base: { snapshot: time }, distance: distance(time.getTime()) }] : [],
      ),
    ];
    const { base } = candidates.reduce((best, candidate) => (candidate.distance < best.distance ? candidate : best));
    const rows = await scopedRead(this.sql, scope, (tx) => balanceFrom(tx, scope, base, until));
    return toBalance(rows, scope.livemode);
  }

  /**
   * Drops a scope's snapshots, for whoever writes movements stamped in past hours (the demo seeder); the worker's
   * next pass takes the last two days again.
   */
  async forget(scope: Scope): Promise<void> {
    await inScope(
      this.sql,
      scope,
      (tx) => tx`DELETE FROM balance_snapshots WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`,
    );
  }

  /**
   * The worker's pass: for every tenant and mode, the last hour old enough (SNAPSHOT_DELAY_MS), computed from the
   * running balances, then the hours before it back to the scope's previous snapshot (at most
   * SNAPSHOT_BACKFILL_HOURS), each from the next. Safe to repeat and to run on several workers: a snapshot is what
   * the ledger says and is written once.
   */
  async snapshot(asOf: Date, items: ItemRunner = separately('balance snapshots')): Promise<number> {
    const hour = new Date(floorHour(asOf.getTime() - SNAPSHOT_DELAY_MS));
    const scopes = await this.workerSql<
      { tenant_id: string; livemode: boolean }[]
    >`SELECT * FROM worker_balance_snapshot_scopes(${hour})`;
    return items.each(
      scopes,
      (row) => `${row.tenant_id}:${row.livemode}`,
      (row) =>
        inScope(this.sql, { tenantId: row.tenant_id, livemode: row.livemode }, async (tx) => {
          const scope = { tenantId: row.tenant_id, livemode: row.livemode };
          await writeSnapshot(tx, scope, hour, 'running');
          const [{ previous }] = await tx<{ previous: Date | null }[]>`
            SELECT max(at) AS previous FROM balance_snapshots
            WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND at < ${hour}`;
          const oldest = Math.max(
            hour.getTime() - SNAPSHOT_BACKFILL_HOURS * HOUR_MS,
            previous ? previous.getTime() + HOUR_MS : -Infinity,
          );
          for (let at = hour.getTime() - HOUR_MS; at >= oldest; at -= HOUR_MS)
            await writeSnapshot(tx, scope, new Date(at), { snapshot: new Date(at + HOUR_MS) });
          return true;
        }),
    );
  }
}

async function writeSnapshot(tx: Tx, scope: Scope, at: Date, base: Base) {
  await tx`
    INSERT INTO balance_snapshots (tenant_id, livemode, at, currency, type, balance)
    SELECT ${scope.tenantId}, ${scope.livemode}, ${at}, currency, type, balance FROM (${balanceQuery(tx, scope, base, at)}) b
    ON CONFLICT DO NOTHING`;
}

function balanceFrom(tx: Tx, scope: Scope, base: Base, until: Date) {
  return tx<BalanceRow[]>`${balanceQuery(tx, scope, base, until)} ORDER BY currency, type`;
}

/**
 * One statement, so the running balances and the movements since are read in one snapshot of the database: the
 * balance-bearing accounts at `until` from the base, adding the movements between a base before it or subtracting
 * those between it and a base after it (now's running balances are after every instant).
 */
function balanceQuery(tx: Tx, scope: Scope, base: Base, until: Date) {
  const { tenantId, livemode } = scope;
  const accounts = tx`
    SELECT currency, type, balance FROM ledger_accounts
    WHERE tenant_id = ${tenantId} AND livemode = ${livemode} AND type IN ${tx(BALANCE_ACCOUNT_TYPES)}`;
  const baseAt = base === 'running' ? END_OF_TIME : base.snapshot;
  const forward = baseAt.getTime() <= until.getTime();
  const [from, to] = forward ? [baseAt, until] : [until, baseAt];
  const baseRows =
    base === 'running'
      ? accounts
      : // Today's accounts at zero as well, so the currencies are those GET /v1/balance lists.
        tx`SELECT currency, type, balance FROM balance_snapshots
          WHERE tenant_id = ${tenantId} AND livemode = ${livemode} AND at = ${base.snapshot}
          UNION ALL SELECT currency, type, 0 FROM (${accounts}) a`;
  const window = tx`
    tenant_id = ${tenantId} AND livemode = ${livemode}
    AND id >= ${idFloor('txn', new Date(from.getTime() - ID_MARGIN_MS))} AND id < ${idFloor('txn', new Date(to.getTime() + ID_MARGIN_MS))}
    AND created_at >= ${from} AND created_at < ${to}`;
  return tx`
    SELECT currency, type, sum(balance)::bigint AS balance FROM (
      ${baseRows}
      UNION ALL
      SELECT e.currency, a.type, ${forward ? 1 : -1} * e.amount
      FROM (
        SELECT id FROM ledger_transactions WHERE ${window} AND balance_type IS NOT NULL
        UNION ALL
        SELECT id FROM ledger_transactions WHERE ${window} AND balance_type IS NULL
      ) t
      JOIN ledger_entries e ON e.transaction_id = t.id
      JOIN ledger_accounts a ON a.id = e.account_id AND a.type IN ${tx(BALANCE_ACCOUNT_TYPES)}
    ) moved
    GROUP BY currency, type`;
}
