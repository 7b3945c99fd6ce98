import { randomInt } from 'node:crypto';
import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { listPage, type ListParams } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { ApiError, safeEcho } from '../../http/errors.js';
import { knownCurrency } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import type { EventType } from '../events/catalog.js';
import type { CardVault } from '../vault/vault.js';
import type { BankAccount, CreateBankAccountBody, UpdateBankAccountBody } from './schemas.js';
import { auditChange, type AuditContext } from '../audit/record.js';

interface BankAccountRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  country: string;
  currency: string;
  account_holder_name: string | null;
  routing_number: string;
  last4: string;
  fingerprint: string;
  kek_id: string;
  wrapped_dek: Buffer;
  account_ciphertext: Buffer;
  status: 'new' | 'verified' | 'verification_failed';
  microdeposit_amounts: number[];
  verification_attempts: number;
  default_for_currency: boolean;
  metadata: Record<string, string>;
  deleted_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const BANK_ACCOUNT_COLUMNS: Columns<BankAccountRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['country', 'text'],
  ['currency', 'text'],
  ['account_holder_name', 'text'],
  ['routing_number', 'text'],
  ['last4', 'text'],
  ['fingerprint', 'text'],
  ['kek_id', 'text'],
  ['wrapped_dek', 'bytea'],
  ['account_ciphertext', 'bytea'],
  ['status', 'text'],
  ['microdeposit_amounts', 'jsonb'],
  ['verification_attempts', 'integer'],
  ['default_for_currency', 'boolean'],
  ['metadata', 'jsonb'],
  ['deleted_at', 'timestamptz'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

/** Stripe's test-mode micro-deposits; in live mode the simulated bank draws two amounts of its own. */
const TEST_MICRODEPOSITS = [32, 45];
/** Wrong amounts allowed before the account is refused for good (Stripe's micro-deposit rule). */
const MAX_VERIFICATION_ATTEMPTS = 3;

const toApiBankAccount = (row: BankAccountRow): BankAccount => ({
  id: row.id,
  object: 'bank_account',
  account_holder_name: row.account_holder_name,
  country: row.country,
  currency: row.currency,
  routing_number: row.routing_number,
  last4: row.last4,
  fingerprint: row.fingerprint,
  status: row.status,
  default_for_currency: row.default_for_currency,
  metadata: row.metadata ?? {},
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

/** ABA routing numbers carry a weighted checksum (3, 7, 1), which catches any one mistyped digit. */
function routingNumberValid(routing: string): boolean {
  const d = [...routing].map(Number);
  const sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
  return sum % 10 === 0;
}

function sameAmounts(given: number[], expected: number[]): boolean {
  const sorted = (values: number[]) => [...values].sort((a, b) => a - b).join(',');
  return sorted(given) === sorted(expected);
}

const unusable = (code: string, message: string) => ApiError.invalid(code, message, 'destination');

/**
 * The tenant's bank accounts, the only places payouts may go. An account number is sealed in the
 * vault like a card number; a payout names the account by id, and only the simulated bank rail
 * opens the number, when it moves the money.
 */
export class BankAccountService {
  constructor(
    private readonly sql: Sql,
    private readonly vault: CardVault,
    private readonly now: Clock = systemClock,
  ) {}

  async create(scope: Scope, body: CreateBankAccountBody, context: AuditContext): Promise<BankAccount> {
    const currency = knownCurrency(body.currency);
    if (!routingNumberValid(body.routing_number))
      throw ApiError.invalid('invalid_routing_number', 'The routing number fails its checksum.', 'routing_number');
    const id = newId('ba', this.now());
    const sealed = this.vault.sealPan(body.account_number, id);
    const now = this.now();
    const row: BankAccountRow = {
      id,
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      country: body.country,
      currency,
      account_holder_name: body.account_holder_name ?? null,
      routing_number: body.routing_number,
      last4: body.account_number.slice(-4),
      fingerprint: this.vault.fingerprint(`bank_account:${body.routing_number}:${body.account_number}`, scope.tenantId),
      kek_id: sealed.kekId,
      wrapped_dek: sealed.wrappedDek,
      account_ciphertext: sealed.ciphertext,
      status: 'new',
      microdeposit_amounts: scope.livemode ? [randomInt(1, 100), randomInt(1, 100)] : TEST_MICRODEPOSITS,
      verification_attempts: 0,
      default_for_currency: false,
      metadata: body.metadata ?? {},
      deleted_at: null,
      created_at: now,
      updated_at: now,
    };
    return inScope(this.sql, scope, async (tx) => {
      await this.lockDefaults(tx, scope, currency);
      // The first account of a currency becomes its default, as Stripe's first external account does.
      const [current] = await tx`
        SELECT id FROM bank_accounts WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
          AND currency = ${currency} AND default_for_currency AND deleted_at IS NULL`;
      row.default_for_currency = body.default_for_currency ?? !current;
      if (row.default_for_currency && current) await this.clearDefault(tx, scope, currency);
      await insertRows(tx, 'bank_accounts', BANK_ACCOUNT_COLUMNS, [row]);
      const account = toApiBankAccount(row);
      await this.emit(tx, scope, 'bank_account.created', account, context);
      await auditChange(tx, scope, context, 'bank_account.created', 'bank_account', id, null, account);
      return account;
    });
  }

  async retrieve(scope: Scope, id: string): Promise<BankAccount> {
    return toApiBankAccount(await inScope(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  async list(scope: Scope, params: ListParams & { status?: string; currency?: string }) {
    return inScope(this.sql, scope, async (tx) => {
      const page = await listPage<BankAccountRow>(tx, 'bank_accounts', scope, params, [
        tx`AND deleted_at IS NULL`,
        params.status ? tx`AND status = ${params.status}` : tx``,
        params.currency ? tx`AND currency = ${params.currency}` : tx``,
      ]);
      return { data: page.rows.map(toApiBankAccount), has_more: page.hasMore };
    });
  }

  async update(scope: Scope, id: string, body: UpdateBankAccountBody, context: AuditContext) {
    return inScope(this.sql, scope, async (tx) => {
      const row = await this.find(tx, scope, id);
      if (body?.default_for_currency) {
        await this.lockDefaults(tx, scope, row.currency);
        await this.clearDefault(tx, scope, row.currency);
      }
      const [updated] = await tx<BankAccountRow[]>`
        UPDATE bank_accounts SET
          default_for_currency = default_for_currency OR ${body?.default_for_currency ?? false},
          metadata = metadata || ${tx.json((body?.metadata ?? {}) as never)}, updated_at = ${this.now()}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
        RETURNING *`;
      if (!updated) throw ApiError.notFound('bank_account', id);
      const account = toApiBankAccount(updated);
      await this.emit(tx, scope, 'bank_account.updated', account, context);
      await auditChange(tx, scope, context, 'bank_account.updated', 'bank_account', id, toApiBankAccount(row), account);
      return account;
    });
  }

  async remove(scope: Scope, id: string, context: AuditContext) {
    return inScope(this.sql, scope, async (tx) => {
      const [deleted] = await tx<BankAccountRow[]>`
        UPDATE bank_accounts SET deleted_at = ${this.now()}, default_for_currency = false, updated_at = ${this.now()}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
        RETURNING *`;
      if (!deleted) throw ApiError.notFound('bank_account', id);
      const account = toApiBankAccount(deleted);
      await this.emit(tx, scope, 'bank_account.deleted', account, context);
      await auditChange(tx, scope, context, 'bank_account.deleted', 'bank_account', id, null, {
        ...account,
        deleted: true,
      });
      return { id, object: 'bank_account' as const, deleted: true as const };
    });
  }

  /**
   * Checks the two micro-deposit amounts. A wrong guess is counted (and committed) before the 400
   * is answered, so guesses cannot outrun the limit however many are sent at once: the count only
   * moves by a compare-and-set on the account still being `new` with attempts left.
   */
  async verify(scope: Scope, id: string, amounts: number[], context: AuditContext): Promise<BankAccount> {
    const outcome = await inScope(this.sql, scope, async (tx) => {
      const row = await this.find(tx, scope, id);
      if (row.status === 'verified')
        throw ApiError.invalid('bank_account_verified', 'This bank account is already verified.');
      if (row.status === 'verification_failed')
        throw ApiError.invalid(
          'bank_account_verification_failed',
          'This bank account failed verification too many times; register it again.',
        );
      const matches = sameAmounts(amounts, row.microdeposit_amounts);
      const [updated] = matches
        ? await tx<BankAccountRow[]>`
            UPDATE bank_accounts SET status = 'verified', updated_at = ${this.now()}
            WHERE id = ${id} AND status = 'new' AND verification_attempts < ${MAX_VERIFICATION_ATTEMPTS} RETURNING *`
        : await tx<BankAccountRow[]>`
            UPDATE bank_accounts SET verification_attempts = verification_attempts + 1, updated_at = ${this.now()},
              status = CASE WHEN verification_attempts + 1 >= ${MAX_VERIFICATION_ATTEMPTS}
                THEN 'verification_failed' ELSE status END
            WHERE id = ${id} AND status = 'new' AND verification_attempts < ${MAX_VERIFICATION_ATTEMPTS} RETURNING *`;
      if (!updated)
        throw ApiError.invalid('bank_account_verification_failed', 'This bank account is no longer being verified.');
      const account = toApiBankAccount(updated);
      if (updated.status !== 'new') await this.emit(tx, scope, `bank_account.${updated.status}`, account, context);
      const attemptsLeft = MAX_VERIFICATION_ATTEMPTS - updated.verification_attempts;
      // Every wrong guess is a security event, not only the last one that refuses the account.
      await auditChange(
        tx,
        scope,
        context,
        matches ? 'bank_account.verified' : 'bank_account.verification_failed',
        'bank_account',
        id,
        toApiBankAccount(row),
        { ...account, attempts_left: attemptsLeft },
      );
      return { account, matches, attemptsLeft };
    });
    if (!outcome.matches)
      throw ApiError.invalid(
        'bank_account_verification_failed',
        outcome.attemptsLeft > 0
          ? `The amounts do not match the micro-deposits; ${outcome.attemptsLeft} attempt(s) left.`
          : 'The amounts do not match the micro-deposits; the account can no longer be verified.',
        'amounts',
      );
    return outcome.account;
  }

  /**
   * The account a payout goes to: the one named, which must be a verified account of this tenant
   * and mode in the payout's currency, or else the default verified account of the currency.
   */
  async payoutDestination(tx: Tx, scope: Scope, id: string | undefined, currency: string): Promise<string> {
    if (id === undefined) {
      const fallback = await this.defaultDestination(tx, scope, currency);
      if (!fallback)
        throw unusable(
          'no_external_account',
          `There is no verified default bank account for ${currency}; register one at /v1/bank_accounts and verify it.`,
        );
      return fallback;
    }
    const [row] = await tx<Pick<BankAccountRow, 'id' | 'status' | 'currency'>[]>`
      SELECT id, status, currency FROM bank_accounts
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL`;
    if (!row)
      throw new ApiError(
        'invalid_request_error',
        'resource_missing',
        `No such bank account: '${safeEcho(id)}'`,
        'destination',
        400,
      );
    if (row.status !== 'verified')
      throw unusable('bank_account_unverified', 'Payouts go only to verified bank accounts: verify this one first.');
    if (row.currency !== currency)
      throw unusable('bank_account_currency_mismatch', `This bank account receives ${row.currency}, not ${currency}.`);
    return row.id;
  }

  /** The verified default account of a currency, for automatic payouts; null keeps the funds available. */
  async defaultDestination(tx: Tx, scope: Scope, currency: string): Promise<string | null> {
    const [row] = await tx<{ id: string }[]>`
      SELECT id FROM bank_accounts WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        AND currency = ${currency} AND default_for_currency AND status = 'verified' AND deleted_at IS NULL`;
    return row?.id ?? null;
  }

  /** The account number, for the bank rail only; an account deleted after its payout left still has one. */
  async accountNumber(tx: Tx, scope: Scope, id: string): Promise<string | null> {
    const [row] = await tx<Pick<BankAccountRow, 'kek_id' | 'wrapped_dek' | 'account_ciphertext'>[]>`
      SELECT kek_id, wrapped_dek, account_ciphertext FROM bank_accounts
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
    if (!row) return null;
    return this.vault.openPan(
      { kekId: row.kek_id, wrappedDek: row.wrapped_dek, ciphertext: row.account_ciphertext },
      id,
    );
  }

  private async find(tx: Tx, scope: Scope, id: string): Promise<BankAccountRow> {
    const [row] = await tx<BankAccountRow[]>`
      SELECT * FROM bank_accounts
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL`;
    if (!row) throw ApiError.notFound('bank_account', id);
    return row;
  }

  // Serializes changes to a currency's default account, so two at once cannot both claim it.
  private async lockDefaults(tx: Tx, scope: Scope, currency: string) {
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`bank_accounts:${scope.tenantId}:${scope.livemode}:${currency}`}, 0))`;
  }

  private async clearDefault(tx: Tx, scope: Scope, currency: string) {
    await tx`
      UPDATE bank_accounts SET default_for_currency = false, updated_at = ${this.now()}
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND currency = ${currency}
        AND default_for_currency AND deleted_at IS NULL`;
  }

  private async emit(tx: Tx, scope: Scope, type: EventType, account: BankAccount, context: AuditContext) {
    await insertRows(tx, 'events', EVENT_COLUMNS, [newEvent(scope, type, account, context.requestId, this.now())]);
  }
}
