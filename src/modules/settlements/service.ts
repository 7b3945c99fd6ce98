import { primaryReads, type Reads } from '../../db/replica.js';
import { inScope, scopedRead, type Scope, type Sql } from '../../db/index.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { newId } from '../../lib/ids.js';
import { isoDate, unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import { settlementTransaction } from '../ledger/postings.js';
import { LEDGER_AMOUNT_LIMIT, type LedgerService } from '../ledger/service.js';
import type { PayoutService } from '../payouts/service.js';
import type { Settlement } from './schemas.js';
import type { SettlementSchedule } from './schedule.js';

interface SettlementRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  currency: string;
  settlement_date: string | Date;
  count: number;
  gross: number;
  fees: number;
  refunds: number;
  disputes: number;
  net: number;
  ledger_transaction_id: string | null;
  payout_id: string | null;
  created_at: Date;
}

const SETTLEMENT_COLUMNS: Columns<Omit<SettlementRow, 'payout_id'>> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['currency', 'text'],
  ['settlement_date', 'date'],
  ['count', 'integer'],
  ['gross', 'bigint'],
  ['fees', 'bigint'],
  ['refunds', 'bigint'],
  ['disputes', 'bigint'],
  ['net', 'bigint'],
  ['ledger_transaction_id', 'text'],
  ['created_at', 'timestamptz'],
];

interface DueTransaction {
  id: string;
  type: string;
  amount: number;
  fee: number;
}

const toApiSettlement = (row: SettlementRow): Settlement => ({
  id: row.id,
  object: 'settlement',
  currency: row.currency,
  settlement_date: unixSeconds(`${isoDate(row.settlement_date)}T00:00:00Z`),
  count: row.count,
  gross: row.gross,
  fees: row.fees,
  refunds: row.refunds,
  disputes: row.disputes,
  net: row.net,
  payout: row.payout_id,
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

/** How many transactions one settlement takes at most; a larger backlog gets several. */
const SETTLEMENT_BATCH = 5_000;

/**
 * The longest prefix of due transactions whose amounts and fees, taken all as positive, stay within
 * the ledger's limit: then no total of the settlement (gross, fees, refunds, net) exceeds it. The
 * rest waits for the next settlement of the same pass.
 */
function withinLedgerLimit(due: DueTransaction[]): DueTransaction[] {
  let total = 0;
  let taken = 0;
  for (const transaction of due) {
    total += Math.abs(transaction.amount) + transaction.fee;
    if (total > LEDGER_AMOUNT_LIMIT) break;
    taken++;
  }
  return due.slice(0, taken);
}

/**
 * The settlement job: moves due pending funds to available, per tenant, mode and currency, each
 * group in one database transaction that posts the movement, records the settlement and marks its
 * balance transactions settled. A kill at any point leaves each group either wholly settled or
 * untouched, and a settled transaction is never picked again, so re-running is always safe.
 * Rows are claimed with SKIP LOCKED, so two workers share the work instead of doubling it.
 */
export class SettlementService {
  constructor(
    private readonly sql: Sql,
    private readonly ledger: LedgerService,
    private readonly payouts: PayoutService,
    private readonly scheduleFor: (tenantId: string) => Promise<SettlementSchedule>,
    private readonly workerSql: Sql,
    private readonly now: Clock = systemClock,
    /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  /**
   * Settles everything due at `asOf`; returns the settlements made. Each tenant, mode and currency
   * is settled (and paid out) on its own: one that fails is left to a later pass.
   */
  async run(asOf = this.now(), items: ItemRunner = separately('settlement groups')): Promise<Settlement[]> {
    const groups = await this.workerSql<
      { tenant_id: string; livemode: boolean; currency: string }[]
    >`SELECT * FROM worker_due_settlements(${asOf})`;
    const made: Settlement[] = [];
    await items.each(
      groups,
      (group) => `${group.tenant_id}:${group.livemode}:${group.currency}`,
      async (group) => {
        const scope = { tenantId: group.tenant_id, livemode: group.livemode };
        for (let more = true; more;) {
          const settled = await this.settle(scope, group.currency, asOf);
          if (settled.settlement) made.push(settled.settlement);
          more = settled.more;
        }
        if ((await this.scheduleFor(scope.tenantId)).automatic_payouts)
          await this.payouts.payOutSettled(scope, group.currency);
        return true;
      },
    );
    return made;
  }

  private async settle(
    scope: Scope,
    currency: string,
    asOf: Date,
  ): Promise<{ settlement: Settlement | null; more: boolean }> {
    return inScope(this.sql, scope, async (tx) => {
      // The group's accounts first, all at once (the global lock order, see LedgerService.lockAvailable).
      const available = await this.ledger.lockAvailable(tx, scope, currency);
      const found = await tx<DueTransaction[]>`
        SELECT id, type, amount, fee FROM ledger_transactions
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND currency = ${currency}
          AND balance_type = 'pending' AND settlement_id IS NULL AND available_on <= ${asOf}
        ORDER BY id LIMIT ${SETTLEMENT_BATCH} FOR UPDATE SKIP LOCKED`;
      const due = withinLedgerLimit(found);
      const more = found.length === SETTLEMENT_BATCH || due.length < found.length;
      if (!due.length) return { settlement: null, more: false };
      const sum = (types: string[], pick: (t: DueTransaction) => number) =>
        due.filter((t) => types.includes(t.type)).reduce((total, t) => total + pick(t), 0);
      const net = due.reduce((total, t) => total + t.amount - t.fee, 0);
      // Refunds and disputes settle with charges; a day whose deductions exceed what it brings and
      // what is available waits for later charges rather than driving available below zero.
      if (net < 0 && available < -net) return { settlement: null, more: false };
      const id = newId('st', this.now());
      const [ledgerTransactionId] =
        net === 0 ? [null] : await this.ledger.post(tx, scope, [settlementTransaction({ id, currency, net })]);
      const row: SettlementRow = {
        id,
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        currency,
        settlement_date: isoDate(asOf),
        count: due.length,
        gross: sum(['charge'], (t) => t.amount),
        fees: due.reduce((total, t) => total + t.fee, 0),
        refunds: sum(['refund'], (t) => t.amount),
        disputes: sum(['dispute', 'dispute_reversal'], (t) => t.amount),
        net,
        ledger_transaction_id: ledgerTransactionId,
        payout_id: null,
        created_at: this.now(),
      };
      const settlement = toApiSettlement(row);
      await Promise.all([
        insertRows(tx, 'settlements', SETTLEMENT_COLUMNS, [row]),
        tx`UPDATE ledger_transactions SET settlement_id = ${id} WHERE id = ANY(${due.map((t) => t.id)})`,
        insertRows(tx, 'events', EVENT_COLUMNS, [newEvent(scope, 'balance.available', settlement, null, this.now())]),
      ]);
      return { settlement, more };
    });
  }

  async list(scope: Scope, params: ListParams & { currency?: string; payout?: string }) {
    return this.reads.page(scope, async (tx) => {
      const page = await listPage<SettlementRow>(tx, 'settlements', scope, params, [
        params.currency ? tx`AND currency = ${params.currency}` : tx``,
        params.payout ? tx`AND payout_id = ${params.payout}` : tx``,
      ]);
      return { data: page.rows.map(toApiSettlement), has_more: page.hasMore };
    });
  }

  async retrieve(scope: Scope, id: string): Promise<Settlement> {
    return toApiSettlement(
      await scopedRead(this.sql, scope, (tx) => findOwned<SettlementRow>(tx, 'settlements', scope, id, 'settlement')),
    );
  }
}
