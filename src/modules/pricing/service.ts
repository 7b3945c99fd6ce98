import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { currencyExponent, requestedCurrency } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds } from '../../lib/time.js';
import { LoadingCache } from '../../lib/loading-cache.js';
import { recordAudit, type AuditContext } from '../audit/record.js';
import {
  CARD_FUNDINGS,
  type CardFunding,
  type FeeDetail,
  type FeePreview,
  type FeePreviewBody,
  type Plan,
  type PricingPlan,
  type Rate,
  type SetPricingBody,
} from './schemas.js';

/** Cards issued in any other country are international. */
const PLATFORM_COUNTRY = 'US';

/** In force for a tenant and mode until the operator sets a plan; reported as version 0. */
const DEFAULT_PLAN: Plan = {
  type: 'blended',
  processing: { percent_bps: 290, fixed: 30 },
  international_bps: 150,
  currency_conversion_bps: 100,
  instant_settlement_bps: 100,
  refund_fee: { fixed: 0 },
  dispute_fee: { fixed: 1500 },
};

/**
 * The one rounding rule for fees: numerator / denominator rounded half up (every quantity is
 * non-negative, so half goes away from zero: 14.5 → 15, 2.5 → 3). BigInt keeps it exact for any
 * amount, where amount × bps in floating point would not be.
 */
export function roundHalfUp(numerator: bigint, denominator: bigint): bigint {
  return (2n * numerator + denominator) / (2n * denominator);
}

/** bps basis points of amount, in the amount's minor units. */
export function percentOf(amount: number, bps: number): number {
  return Number(roundHalfUp(BigInt(amount) * BigInt(bps), 10_000n));
}

function exponentOf(currency: string, param: string): number {
  const exponent = currencyExponent(currency);
  if (exponent === undefined)
    throw ApiError.invalid(
      'invalid_currency',
      `'${currency.slice(0, 3)}' is not a supported ISO 4217 currency.`,
      param,
    );
  return exponent;
}

// A plan's general fixed fees are in hundredths of a major unit so that one number serves every
// currency; a per-currency override is already in that currency's minor unit.
function scaledFixed(hundredths: number, exponent: number): number {
  return Number(roundHalfUp(BigInt(hundredths) * 10n ** BigInt(exponent), 100n));
}

function rateIn(rate: Rate, currency: string, exponent: number): { percent_bps: number; fixed: number } {
  return rate.currencies?.[currency] ?? { percent_bps: rate.percent_bps, fixed: scaledFixed(rate.fixed, exponent) };
}

const percentLabel = (bps: number) => `${Math.floor(bps / 100)}.${String(bps % 100).padStart(2, '0')}%`;

export interface ChargeInput {
  amount: number;
  currency: string;
  /** ISO 3166-1 alpha-2; null when unknown, which is priced as domestic. */
  cardCountry: string | null;
  /** Anything but debit or prepaid (an unknown funding too) is priced as credit. */
  cardFunding: string;
  presentmentCurrency: string | null;
  instantSettlement: boolean;
}

export interface ChargePrice {
  fee: number;
  net: number;
  fee_details: FeeDetail[];
}

/**
 * The fee on a charge under a plan. The preview endpoint quotes with it and the payment path must
 * price with it, so a payment's fee equals its preview by construction. Every percentage line is
 * rounded on its own with roundHalfUp and the fee is the sum of the lines, so the breakdown always
 * adds up exactly. A line appears when its rate applies and is non-zero, even if it rounds to 0.
 */
export function priceCharge(plan: Plan, input: ChargeInput): ChargePrice {
  const { amount, currency } = input;
  const exponent = exponentOf(currency, 'currency');
  const details: FeeDetail[] = [];
  const line = (type: FeeDetail['type'], value: number, description: string) =>
    details.push({ type, amount: value, currency, description });
  const percentLine = (type: FeeDetail['type'], bps: number, description: string) => {
    if (bps > 0) line(type, percentOf(amount, bps), `${percentLabel(bps)} ${description}`);
  };

  if (plan.type === 'interchange_plus' && plan.interchange_plus) {
    const ic = plan.interchange_plus;
    const funding: CardFunding = (CARD_FUNDINGS as readonly string[]).includes(input.cardFunding)
      ? (input.cardFunding as CardFunding)
      : 'credit';
    percentLine('interchange', ic.interchange_bps[funding], `interchange on a ${funding} card (simulated)`);
    percentLine('scheme_fee', ic.scheme_fee_bps, 'card scheme fee');
    const markup = rateIn(ic.markup, currency, exponent);
    percentLine('markup', markup.percent_bps, 'markup');
    if (markup.fixed > 0) line('markup_fixed', markup.fixed, 'fixed markup per payment');
  } else if (plan.processing) {
    const rate = rateIn(plan.processing, currency, exponent);
    percentLine('processing_percentage', rate.percent_bps, 'processing fee');
    if (rate.fixed > 0) line('processing_fixed', rate.fixed, 'fixed fee per payment');
  }
  const country = input.cardCountry?.toUpperCase() ?? PLATFORM_COUNTRY;
  if (country !== PLATFORM_COUNTRY)
    percentLine(
      'international',
      plan.international_bps,
      `surcharge for a card issued outside ${PLATFORM_COUNTRY} (${country})`,
    );
  if (input.presentmentCurrency && input.presentmentCurrency !== currency) {
    percentLine(
      'currency_conversion',
      plan.currency_conversion_bps,
      `currency conversion from ${input.presentmentCurrency}`,
    );
  }
  if (input.instantSettlement) percentLine('instant_settlement', plan.instant_settlement_bps, 'instant settlement');

  const fee = details.reduce((sum, d) => sum + d.amount, 0);
  return { fee, net: amount - fee, fee_details: details };
}

/** The plan's fixed fee on a refund or a dispute, in the currency's minor unit, with its fee detail. */
export function priceFixedFee(
  plan: Plan,
  kind: 'refund_fee' | 'dispute_fee',
  currency: string,
): { fee: number; fee_details: FeeDetail[] } {
  const exponent = exponentOf(currency, 'currency');
  const schedule = plan[kind];
  const fee = schedule.currencies?.[currency] ?? scaledFixed(schedule.fixed, exponent);
  if (fee === 0) return { fee: 0, fee_details: [] };
  return {
    fee,
    fee_details: [
      {
        type: kind,
        amount: fee,
        currency,
        description: kind === 'refund_fee' ? 'fixed fee per refund' : 'fixed fee per dispute',
      },
    ],
  };
}

interface PlanRow {
  id: string;
  livemode: boolean;
  version: number;
  plan: Plan;
  created_at: Date;
}

const toApiPlan = (row: PlanRow): PricingPlan => ({
  id: row.id,
  object: 'pricing_plan',
  version: row.version,
  livemode: row.livemode,
  created: unixSeconds(row.created_at),
  ...row.plan,
});

/** A plan as its audit entry shows it: the version and the plan's terms. */
const versioned = ({
  version,
  id: _id,
  object: _object,
  livemode: _livemode,
  created: _created,
  ...plan
}: PricingPlan) => ({
  version,
  plan,
});

const defaultPlan = (livemode: boolean): PricingPlan => ({
  id: null,
  object: 'pricing_plan',
  version: 0,
  livemode,
  created: null,
  ...DEFAULT_PLAN,
});

// The schema checks shapes; what it cannot say is which section each type needs and whether a
// currency key is a real ISO 4217 code.
function checkPlan(plan: Plan) {
  if (plan.type === 'blended') {
    if (!plan.processing)
      throw ApiError.invalid('parameter_missing', 'A blended plan needs `processing`.', 'processing');
    if (plan.interchange_plus)
      throw ApiError.invalid(
        'parameter_invalid',
        '`interchange_plus` is only for interchange_plus plans.',
        'interchange_plus',
      );
  } else {
    if (!plan.interchange_plus)
      throw ApiError.invalid(
        'parameter_missing',
        'An interchange_plus plan needs `interchange_plus`.',
        'interchange_plus',
      );
    if (plan.processing)
      throw ApiError.invalid(
        'parameter_invalid',
        '`processing` is only for blended plans; interchange_plus plans price with `interchange_plus[markup]`.',
        'processing',
      );
  }
  const overrides: Array<[string, Record<string, unknown> | undefined]> = [
    ['processing', plan.processing?.currencies],
    ['interchange_plus[markup]', plan.interchange_plus?.markup.currencies],
    ['refund_fee', plan.refund_fee.currencies],
    ['dispute_fee', plan.dispute_fee.currencies],
  ];
  for (const [field, currencies] of overrides) {
    for (const currency of Object.keys(currencies ?? {})) exponentOf(currency, `${field}[currencies][${currency}]`);
  }
}

export class PricingService {
  /** Latest version per tenant and mode, briefly: another process sees a new plan within 30 seconds. */
  private readonly latest = new LoadingCache<PricingPlan>(30_000);
  /** Versions never change once written, so they are cached for good. */
  private readonly versions = new LoadingCache<PricingPlan>();

  constructor(private readonly sql: Sql) {}

  /** The plan a new payment is priced with. */
  currentPlan(scope: Scope): Promise<PricingPlan> {
    return this.latest.get(`${scope.tenantId}:${scope.livemode}`, () => this.retrieve(scope));
  }

  /** The exact version a payment was priced with. */
  planVersion(scope: Scope, version: number): Promise<PricingPlan> {
    return this.versions.get(`${scope.tenantId}:${scope.livemode}:${version}`, () => this.retrieve(scope, version));
  }

  /** The operator's change: a new immutable version, numbered after the latest for that mode. */
  async setPlan(tenantId: string, body: SetPricingBody, context: AuditContext): Promise<PricingPlan> {
    const { livemode = false, ...plan } = body;
    checkPlan(plan);
    const scope = { tenantId, livemode };
    const row = await inScope(this.sql, scope, async (tx) => {
      // Locking the tenant serialises concurrent changes, which would otherwise race for the same version number.
      const [tenant] = await tx`SELECT id FROM tenants WHERE id = ${tenantId} FOR UPDATE`;
      if (!tenant) throw ApiError.notFound('tenant', tenantId);
      const before = await this.find(tx, scope);
      const [inserted] = await tx<PlanRow[]>`
        INSERT INTO pricing_plans (id, tenant_id, livemode, version, plan)
        SELECT ${newId('pp')}, ${tenantId}, ${livemode}, coalesce(max(version), 0) + 1, ${tx.json(plan as never)}
        FROM pricing_plans WHERE tenant_id = ${tenantId} AND livemode = ${livemode}
        RETURNING id, livemode, version, plan, created_at`;
      await recordAudit(tx, {
        scope,
        context,
        action: 'pricing_plan.updated',
        target: { type: 'pricing_plan', id: inserted.id },
        before: versioned(before),
        after: versioned(toApiPlan(inserted)),
      });
      return inserted;
    });
    this.latest.delete(`${tenantId}:${livemode}`);
    return toApiPlan(row);
  }

  /** The latest plan (or a given version) for the scope; the default plan when none was set. */
  async retrieve(scope: Scope, version?: number): Promise<PricingPlan> {
    return inScope(this.sql, scope, (tx) => this.find(tx, scope, version));
  }

  private async find(tx: Tx, scope: Scope, version?: number): Promise<PricingPlan> {
    if (version === 0) return defaultPlan(scope.livemode);
    const [row] = await tx<PlanRow[]>`
      SELECT id, livemode, version, plan, created_at FROM pricing_plans
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ${version === undefined ? tx`` : tx`AND version = ${version}`}
      ORDER BY version DESC LIMIT 1`;
    if (row) return toApiPlan(row);
    if (version !== undefined) throw ApiError.notFound('pricing plan version', String(version), 'version');
    return defaultPlan(scope.livemode);
  }

  async preview(scope: Scope, body: FeePreviewBody): Promise<FeePreview> {
    const currency = requestedCurrency(body);
    const presentment = body.presentment_currency?.toLowerCase() ?? null;
    if (presentment) exponentOf(presentment, 'presentment_currency');
    if (body.payment_method && (body.card_country || body.card_funding)) {
      throw ApiError.invalid(
        'parameter_invalid',
        'Give either `payment_method` or `card_country`/`card_funding`: the saved card already has both.',
        'payment_method',
      );
    }
    const { plan, card } = await inScope(this.sql, scope, async (tx) => {
      if (!body.payment_method) return { plan: await this.find(tx, scope), card: null };
      const [row] = await tx<{ country: string | null; funding: string }[]>`
        SELECT country, funding FROM payment_methods WHERE id = ${body.payment_method} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      if (!row) throw ApiError.notFound('payment_method', body.payment_method, 'payment_method');
      return { plan: await this.find(tx, scope), card: row };
    });
    const price = priceCharge(plan, {
      amount: body.amount,
      currency,
      cardCountry: card ? card.country : (body.card_country ?? null),
      cardFunding: card ? card.funding : (body.card_funding ?? 'credit'),
      presentmentCurrency: presentment,
      instantSettlement: body.instant_settlement ?? false,
    });
    return {
      object: 'fee_preview',
      amount: body.amount,
      currency,
      ...price,
      pricing_version: plan.version,
      livemode: scope.livemode,
    };
  }
}
