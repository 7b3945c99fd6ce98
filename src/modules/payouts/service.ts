import { primaryReads, type Reads } from '../../db/replica.js';
import { inScope, scopedRead, type Scope, type Sql, type Tx } from '../../db/index.js';
import { recordAudit, systemContext, type AuditContext } from '../audit/record.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { requestedCurrency } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import type { EventType } from '../events/catalog.js';
import { payoutFailedTransaction, payoutPaidTransaction, payoutTransaction } from '../ledger/postings.js';
import { LEDGER_AMOUNT_LIMIT, type LedgerService } from '../ledger/service.js';
import type { BankAccountService } from '../bank-accounts/service.js';
import { availableOn } from '../settlements/schedule.js';
import type { CreatePayoutBody, Payout } from './schemas.js';

interface PayoutRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  amount: number;
  currency: string;
  method: 'standard' | 'instant';
  status: 'pending' | 'in_transit' | 'paid' | 'failed';
  destination: string;
  description: string | null;
  metadata: Record<string, string>;
  automatic: boolean;
  idempotency_key: string | null;
  arrival_date: Date;
  failure_code: string | null;
  failure_message: string | null;
  balance_transaction: string;
  failure_balance_transaction: string | null;
  created_at: Date;
  updated_at: Date;
}

const PAYOUT_COLUMNS: Columns<PayoutRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['method', 'text'],
  ['status', 'text'],
  ['destination', 'text'],
  ['description', 'text'],
  ['metadata', 'jsonb'],
  ['automatic', 'boolean'],
  ['idempotency_key', 'text'],
  ['arrival_date', 'timestamptz'],
  ['failure_code', 'text'],
  ['failure_message', 'text'],
  ['balance_transaction', 'text'],
  ['failure_balance_transaction', 'text'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

/** The simulated rail's test account, after Stripe's: this one does not exist at the bank. */
const FAILING_ACCOUNT = '000111111116';

const toApiPayout = (row: PayoutRow): Payout => ({
  id: row.id,
  object: 'payout',
  amount: row.amount,
  currency: row.currency,
  method: row.method,
  status: row.status,
  destination: row.destination,
  arrival_date: unixSeconds(row.arrival_date),
  automatic: row.automatic,
  balance_transaction: row.balance_transaction,
  failure_balance_transaction: row.failure_balance_transaction,
  failure_code: row.failure_code,
  failure_message: row.failure_message,
  description: row.description,
  metadata: row.metadata ?? {},
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

interface PayoutRequest {
  amount: number;
  currency: string;
  method: 'standard' | 'instant';
  destination: string;
  description: string | null;
  metadata: Record<string, string>;
  automatic: boolean;
  idempotency_key: string | null;
}

/**
 * Payouts draw on the available balance under a row lock on its ledger account, held until the
 * payout and its posting commit: concurrent payouts queue on that lock and each sees what the
 * previous one left, so together they can never take more than there is.
 */
export class PayoutService {
  constructor(
    private readonly sql: Sql,
    private readonly ledger: LedgerService,
    private readonly bankAccounts: BankAccountService,
    private readonly workerSql: Sql,
    private readonly now: Clock = systemClock,
    /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  /**
   * `idempotencyKey` (qualified by the caller's principal) is stored on the payout: a retry whose
   * first run died after committing finds that payout and answers with it as it is now.
   */
  async create(
    scope: Scope,
    body: CreatePayoutBody,
    context: AuditContext,
    idempotencyKey: string | null = null,
  ): Promise<Payout> {
    const currency = requestedCurrency(body);
    const request: Omit<PayoutRequest, 'destination'> = {
      amount: body.amount,
      currency,
      method: (body.method ?? 'standard') as PayoutRequest['method'],
      description: body.description ?? null,
      metadata: body.metadata ?? {},
      automatic: false,
      idempotency_key: idempotencyKey,
    };
    return inScope(this.sql, scope, async (tx) => {
      if (idempotencyKey) {
        const [earlier] = await tx<PayoutRow[]>`
          SELECT * FROM payouts
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND idempotency_key = ${idempotencyKey}`;
        if (earlier) return toApiPayout(earlier);
      }
      const destination = await this.bankAccounts.payoutDestination(tx, scope, body.destination, currency);
      const available = await this.ledger.lockAvailable(tx, scope, currency);
      if (available < body.amount) {
        throw ApiError.invalid(
          'balance_insufficient',
          `The available balance (${available} ${currency}) is smaller than the payout amount.`,
          'amount',
        );
      }
      return this.open(tx, scope, { ...request, destination }, context);
    });
  }

  /**
   * The automatic payout after a settlement: the whole available balance of the currency, and the
   * settlements not yet paid out are linked to it (so each balance transaction can name the payout
   * that carried it). One transaction: a kill leaves either all of it or nothing.
   */
  async payOutSettled(scope: Scope, currency: string): Promise<Payout | null> {
    return inScope(this.sql, scope, async (tx) => {
      const destination = await this.bankAccounts.defaultDestination(tx, scope, currency);
      if (!destination) return null;
      const available = await this.ledger.lockAvailable(tx, scope, currency);
      if (available <= 0) return null;
      const payout = await this.open(
        tx,
        scope,
        {
          // One ledger entry carries at most the ledger's limit; a rest beyond it leaves with the next payout.
          amount: Math.min(available, LEDGER_AMOUNT_LIMIT),
          currency,
          method: 'standard',
          destination,
          description: 'Automatic payout',
          metadata: {},
          automatic: true,
          idempotency_key: null,
        },
        systemContext('automatic-payouts'),
      );
      await tx`UPDATE settlements SET payout_id = ${payout.id} WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND currency = ${currency} AND payout_id IS NULL`;
      return payout;
    });
  }

  private async open(tx: Tx, scope: Scope, request: PayoutRequest, context: AuditContext): Promise<Payout> {
    const now = this.now();
    const row: PayoutRow = {
      id: newId('po', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      ...request,
      status: 'pending',
      // Standard payouts arrive the next business day; instant ones as soon as the rail moves them.
      arrival_date: request.method === 'instant' ? now : availableOn(now, { type: 'daily', delay_days: 1 }),
      failure_code: null,
      failure_message: null,
      balance_transaction: newId('txn', this.now()),
      failure_balance_transaction: null,
      created_at: now,
      updated_at: now,
    };
    await this.ledger.post(tx, scope, [
      {
        ...payoutTransaction({ id: row.id, currency: row.currency, amount: row.amount, created: now }),
        id: row.balance_transaction,
      },
    ]);
    const payout = toApiPayout(row);
    await Promise.all([
      insertRows(tx, 'payouts', PAYOUT_COLUMNS, [row]),
      insertRows(tx, 'events', EVENT_COLUMNS, [
        newEvent(scope, 'payout.created', payout, context.requestId, this.now()),
      ]),
    ]);
    await recordAudit(tx, {
      scope,
      context,
      action: 'payout.created',
      target: { type: 'payout', id: row.id },
      after: payout,
    });
    return payout;
  }

  /**
   * One pass of the simulated bank rail: each pending payout goes in transit, each payout in
   * transit whose arrival date has come is paid or, for the failing test account, fails and its
   * funds return to available. Every step is a compare-and-set on the status committed with its
   * posting and event, so a pass killed half-way, or two passes at once, move nothing twice.
   */
  async advanceRail(now = this.now(), limit = 100, items: ItemRunner = separately('payouts')): Promise<number> {
    const moving = await this.workerSql<
      { id: string; tenant_id: string; livemode: boolean }[]
    >`SELECT * FROM worker_moving_payouts(${now}, ${limit + items.waiting})`;
    await items.each(
      moving,
      (item) => item.id,
      async (item) => {
        const scope = { tenantId: item.tenant_id, livemode: item.livemode };
        await inScope(this.sql, scope, (tx) => this.step(tx, scope, item.id, now));
        return true;
      },
    );
    return moving.length;
  }

  private async step(tx: Tx, scope: Scope, id: string, now: Date) {
    const row = await findOwned<PayoutRow>(tx, 'payouts', scope, id, 'payout');
    if (row.status === 'pending') {
      await this.transition(tx, scope, row, { status: 'in_transit' }, 'payout.updated');
      return;
    }
    if (row.status !== 'in_transit' || new Date(row.arrival_date) > now) return;
    if ((await this.bankAccounts.accountNumber(tx, scope, row.destination)) === FAILING_ACCOUNT) {
      const failureTransaction = newId('txn', this.now());
      const failed = await this.transition(
        tx,
        scope,
        row,
        {
          status: 'failed',
          failure_code: 'no_account',
          failure_message: 'The bank account details on file are probably incorrect: no account was found.',
          failure_balance_transaction: failureTransaction,
        },
        'payout.failed',
      );
      if (failed)
        await this.ledger.post(tx, scope, [
          {
            ...payoutFailedTransaction({ id: row.id, currency: row.currency, amount: row.amount, failed: now }),
            id: failureTransaction,
          },
        ]);
      return;
    }
    if (await this.transition(tx, scope, row, { status: 'paid' }, 'payout.paid')) {
      await this.ledger.post(tx, scope, [
        payoutPaidTransaction({ id: row.id, currency: row.currency, amount: row.amount }),
      ]);
    }
  }

  private async transition(
    tx: Tx,
    scope: Scope,
    row: PayoutRow,
    changes: Partial<PayoutRow>,
    eventType: EventType,
  ): Promise<boolean> {
    const next = { ...row, ...changes, updated_at: this.now() };
    const updated = await tx`
      UPDATE payouts SET status = ${next.status}, failure_code = ${next.failure_code}, failure_message = ${next.failure_message},
        failure_balance_transaction = ${next.failure_balance_transaction}, updated_at = ${next.updated_at}
      WHERE id = ${row.id} AND status = ${row.status} RETURNING id`;
    if (!updated.length) return false;
    await insertRows(tx, 'events', EVENT_COLUMNS, [newEvent(scope, eventType, toApiPayout(next), null, this.now())]);
    return true;
  }

  async list(scope: Scope, params: ListParams & { status?: string }) {
    return this.reads.page(scope, async (tx) => {
      const page = await listPage<PayoutRow>(tx, 'payouts', scope, params, [
        params.status ? tx`AND status = ${params.status}` : tx``,
      ]);
      return { data: page.rows.map(toApiPayout), has_more: page.hasMore };
    });
  }

  async retrieve(scope: Scope, id: string): Promise<Payout> {
    return toApiPayout(
      await scopedRead(this.sql, scope, (tx) => findOwned<PayoutRow>(tx, 'payouts', scope, id, 'payout')),
    );
  }
}
