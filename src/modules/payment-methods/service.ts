import type { Scope, Sql, Tx } from '../../db/index.js';
import { inPageScope, inScope } from '../../db/index.js';
import { findManyOwned, findOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import type { CardDetails } from '../connectors/connector.js';
import type { ConnectorRouter } from '../connectors/router.js';
import {
  cardBrand,
  cardIssuer,
  cvcLooksValid,
  displayableBin,
  DOCUMENTED_TEST_CARDS,
  isExpired,
  luhnValid,
} from '../vault/cards.js';
import type { CardVault } from '../vault/vault.js';
import type { CustomerService } from '../customers/service.js';
import type { PaymentMethod, PaymentMethodInput, Verification } from './schemas.js';
import { cardDataErased } from './retention.js';
import { systemClock, type Clock } from '../../lib/time.js';

export interface PaymentMethodRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  type: 'card';
  brand: string;
  /** Null for numbers shorter than 15 digits, whose BIN and last4 together would leave too little unknown. */
  bin: string | null;
  last4: string;
  exp_month: number;
  exp_year: number;
  funding: string;
  country: string | null;
  fingerprint: string;
  cvc_check: 'pass' | 'fail' | 'unavailable';
  customer: string | null;
  kek_id: string;
  wrapped_dek: Buffer;
  pan_ciphertext: Buffer;
  metadata: Record<string, string>;
  created_at: Date;
}

export const PAYMENT_METHOD_COLUMNS: Columns<PaymentMethodRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['type', 'text'],
  ['brand', 'text'],
  ['bin', 'text'],
  ['last4', 'text'],
  ['exp_month', 'smallint'],
  ['exp_year', 'smallint'],
  ['funding', 'text'],
  ['country', 'text'],
  ['fingerprint', 'text'],
  ['cvc_check', 'text'],
  ['customer', 'text'],
  ['kek_id', 'text'],
  ['wrapped_dek', 'bytea'],
  ['pan_ciphertext', 'bytea'],
  ['metadata', 'jsonb'],
  ['created_at', 'timestamptz'],
];

// The card test suite's magic numbers: 0127 fails the CVC check whatever CVC is sent.
const CVC_FAILS = new Set(['4000000000000127']);

export interface Tokenized {
  row: PaymentMethodRow;
  /** Plaintext details, for the processor call in this request only; never stored or returned. */
  card: CardDetails;
}

const cardError = (code: string, message: string, param: string) =>
  new ApiError('card_error', code, message, param, 402);

export function toApiPaymentMethod(row: PaymentMethodRow): PaymentMethod {
  return {
    id: row.id,
    object: 'payment_method',
    type: 'card',
    card: {
      brand: row.brand,
      bin: row.bin,
      last4: row.last4,
      exp_month: row.exp_month,
      exp_year: row.exp_year,
      funding: row.funding,
      country: row.country,
      fingerprint: row.fingerprint,
      checks: { cvc_check: row.cvc_check },
    },
    customer: row.customer,
    metadata: row.metadata ?? {},
    created: Math.floor(new Date(row.created_at).getTime() / 1000),
    livemode: row.livemode,
  };
}

export class PaymentMethodService {
  constructor(
    private readonly sql: Sql,
    private readonly vault: CardVault,
    private readonly router: ConnectorRouter,
    private readonly processorsFor: (tenantId: string) => Promise<string[]>,
    private readonly customers: CustomerService,
    private readonly now: Clock = systemClock,
  ) {}

  /** Validates and seals a card. Errors name the field but never echo its value. */
  tokenize(scope: Scope, input: PaymentMethodInput, paramPrefix = ''): Tokenized {
    const number = input.card.number.replace(/ /g, '');
    const p = (field: string) => (paramPrefix ? `${paramPrefix}[card][${field}]` : `card[${field}]`);
    if (!luhnValid(number)) throw cardError('incorrect_number', 'Your card number is incorrect.', p('number'));
    if (scope.livemode && DOCUMENTED_TEST_CARDS.has(number))
      throw new ApiError(
        'card_error',
        'card_declined',
        'Your card was declined. Your request was in live mode, but used a known test card.',
        p('number'),
        402,
        'test_mode_live_card',
      );
    if (isExpired(input.card.exp_month, input.card.exp_year))
      throw cardError('invalid_expiry_year', "Your card's expiration year is in the past.", p('exp_year'));
    const brand = cardBrand(number);
    let cvcCheck: PaymentMethodRow['cvc_check'] = 'unavailable';
    if (input.card.cvc !== undefined) {
      if (!cvcLooksValid(input.card.cvc, brand))
        throw cardError('invalid_cvc', "Your card's security code is invalid.", p('cvc'));
      cvcCheck = CVC_FAILS.has(number) ? 'fail' : 'pass';
    }
    const id = newId('pm', this.now());
    const sealed = this.vault.sealPan(number, id);
    const row: PaymentMethodRow = {
      id,
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      type: 'card',
      brand,
      bin: displayableBin(number),
      last4: number.slice(-4),
      exp_month: input.card.exp_month,
      exp_year: input.card.exp_year,
      ...cardIssuer(number),
      fingerprint: this.vault.fingerprint(number, scope.tenantId),
      cvc_check: cvcCheck,
      customer: input.customer ?? null,
      kek_id: sealed.kekId,
      wrapped_dek: sealed.wrappedDek,
      pan_ciphertext: sealed.ciphertext,
      metadata: input.metadata ?? {},
      created_at: this.now(),
    };
    return { row, card: { number, expMonth: input.card.exp_month, expYear: input.card.exp_year } };
  }

  async create(scope: Scope, input: PaymentMethodInput): Promise<PaymentMethod> {
    const { row } = this.tokenize(scope, input);
    await inScope(this.sql, scope, async (tx) => {
      if (row.customer !== null) await this.customers.requireActive(tx, scope, row.customer);
      await this.insert(tx, [row]);
    });
    return toApiPaymentMethod(row);
  }

  insert(tx: Tx, rows: PaymentMethodRow[]) {
    return insertRows(tx, 'payment_methods', PAYMENT_METHOD_COLUMNS, rows);
  }

  async find(tx: Tx, scope: Scope, id: string): Promise<PaymentMethodRow> {
    return findOwned<PaymentMethodRow>(tx, 'payment_methods', scope, id, 'payment_method');
  }

  async retrieve(scope: Scope, id: string): Promise<PaymentMethod> {
    return toApiPaymentMethod(await inScope(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  async retrieveMany(scope: Scope, ids: string[]): Promise<PaymentMethod[]> {
    const rows = await inScope(this.sql, scope, (tx) =>
      findManyOwned<PaymentMethodRow>(tx, 'payment_methods', scope, ids),
    );
    return rows.map(toApiPaymentMethod);
  }

  async list(scope: Scope, params: ListParams & { customer?: string }) {
    return inPageScope(this.sql, scope, async (tx) => {
      const page = await listPage<PaymentMethodRow>(tx, 'payment_methods', scope, params, [
        params.customer ? tx`AND customer = ${params.customer}` : tx``,
      ]);
      return { data: page.rows.map(toApiPaymentMethod), has_more: page.hasMore };
    });
  }

  /** Decrypts the card for a processor call; the plaintext lives only in this request's memory. */
  cardDetails(row: PaymentMethodRow): CardDetails {
    if (row.pan_ciphertext === null) throw cardDataErased();
    const number = this.vault.openPan(
      { kekId: row.kek_id, wrappedDek: row.wrapped_dek, ciphertext: row.pan_ciphertext },
      row.id,
    );
    return { number, expMonth: row.exp_month, expYear: row.exp_year };
  }

  /** Instant verification: local checks plus a $0 authorization through the tenant's processors. */
  async verify(scope: Scope, id: string, body: { cvc?: string; currency?: string } | null): Promise<Verification> {
    const row = await inScope(this.sql, scope, (tx) => this.find(tx, scope, id));
    const card = this.cardDetails(row);
    const reasons: Verification['reasons'] = [];
    const luhn = luhnValid(card.number) ? 'pass' : 'fail';
    if (luhn === 'fail') reasons.push({ code: 'incorrect_number', message: 'The card number fails the Luhn check.' });
    const expiry = isExpired(row.exp_month, row.exp_year) ? 'fail' : 'pass';
    if (expiry === 'fail') reasons.push({ code: 'expired_card', message: 'The card has expired.' });
    let cvcCheck = row.cvc_check;
    if (body?.cvc !== undefined)
      cvcCheck = cvcLooksValid(body.cvc, cardBrand(card.number)) && !CVC_FAILS.has(card.number) ? 'pass' : 'fail';
    if (cvcCheck === 'fail') reasons.push({ code: 'incorrect_cvc', message: 'The security code does not match.' });
    if (cvcCheck === 'unavailable')
      reasons.push({ code: 'cvc_unavailable', message: 'No security code was supplied, so it was not checked.' });
    const currency = body?.currency ?? 'usd';
    const order = await this.processorsFor(scope.tenantId);
    let authorization: Verification['authorization'] = {
      amount: 0,
      currency,
      status: 'error',
      processor: null,
      decline_code: null,
    };
    for (const processor of order) {
      const result = await this.router.get(processor).verify({ card });
      authorization = {
        amount: 0,
        currency,
        status: result.status,
        processor,
        decline_code: result.declineCode ?? null,
      };
      if (result.status !== 'error') {
        if (result.status === 'declined')
          reasons.push({ code: result.code ?? 'card_declined', message: result.message ?? 'The card was declined.' });
        break;
      }
    }
    if (authorization.status === 'error')
      reasons.push({ code: 'processing_error', message: 'No processor could run the $0 authorization.' });
    const verified =
      luhn === 'pass' && expiry === 'pass' && cvcCheck !== 'fail' && authorization.status === 'succeeded';
    return {
      object: 'card_verification',
      payment_method: row.id,
      status: verified ? 'verified' : 'failed',
      checks: { luhn, expiry, cvc_check: cvcCheck, brand: row.brand },
      authorization,
      reasons,
    };
  }
}
