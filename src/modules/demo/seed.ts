import { primaryReads } from '../../db/replica.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Scope } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import type { Clock } from '../../lib/time.js';
import type { Platform } from '../../platform.js';
import { systemContext } from '../audit/record.js';
import type { CreatePaymentBody, Payment } from '../payments/schemas.js';
import { DAY_MS, planHistory, type PlannedPayment } from './plan.js';

const HOUR_MS = 3_600_000;
const CONTEXT = systemContext('demo-seed');
// The simulated bank rail fails payouts to this account (see the README's payout test bank account).
const FAILING_ACCOUNT = '000111111116';
const ROUTING_NUMBER = '110000000';

/**
 * The clock the seeder hands the services: each piece of work runs "at" its planned time, kept per async
 * flow (AsyncLocalStorage), so many payments of different moments can run at once; outside any, real time.
 */
export class ReplayClock {
  private readonly current = new AsyncLocalStorage<number>();
  readonly now: Clock = () => new Date(this.current.getStore() ?? Date.now());

  at<T>(time: number, work: () => Promise<T>): Promise<T> {
    return this.current.run(time, work);
  }
}

export interface SeedOptions {
  tenantId: string;
  days: number;
  seed: number;
  /** The history ends here (default: now); its last day runs up to this moment. */
  until?: Date;
  /** Payments on an ordinary weekday (default 180). */
  perDay?: number;
  /** Payments in flight at once (default 12). */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface SeedSummary {
  days: number;
  payments: number;
  succeeded: number;
  declined: number;
  customers: number;
  refunds: number;
  disputes: number;
  reviews: number;
  settlements: number;
  ms: number;
}

interface Task {
  at: number;
  run: () => Promise<void>;
}

/**
 * Replays `days` days of a small business's activity into a tenant's test mode through the platform's own
 * services (the platform must be built with `clock.now`): payments, saved cards, captures, refunds,
 * disputes and their evidence, fraud reviews, and each night's settlement, payouts and dispute passes.
 * The settlement, payout and dispute passes are the workers' own and act on every tenant whose work is due.
 */
export async function seedDemoHistory(
  platform: Platform,
  clock: ReplayClock,
  options: SeedOptions,
): Promise<SeedSummary> {
  const started = Date.now();
  const until = (options.until ?? new Date()).getTime();
  const scope: Scope = { tenantId: options.tenantId, livemode: false };
  const plan = planHistory({ days: options.days, seed: options.seed, until, perDay: options.perDay ?? 180 });
  const summary: SeedSummary = {
    days: options.days,
    payments: 0,
    succeeded: 0,
    declined: 0,
    customers: 0,
    refunds: 0,
    disputes: 0,
    reviews: 0,
    settlements: 0,
    ms: 0,
  };
  const later = new Map<number, Task[]>();
  const schedule = (at: number, run: () => Promise<void>) => {
    if (at > until) return;
    const day = Math.floor(at / DAY_MS) * DAY_MS;
    later.set(day, [...(later.get(day) ?? []), { at, run }]);
  };
  const saved = new Map<number, Promise<{ customer: string; paymentMethod: string }>>();
  const { payments, refunds, disputes, fraudService, customers, paymentMethods } = platform;

  const refund = (id: string, planned: PlannedPayment, at: number) =>
    schedule(at, async () => {
      const { refund: wanted } = planned;
      const amount = wanted!.ratio === null ? undefined : Math.max(1, Math.round(planned.amount * wanted!.ratio));
      if (await expected(refunds.create(scope, { payment: id, amount, reason: wanted!.reason }, CONTEXT)))
        summary.refunds++;
    });

  const followUps = (payment: Payment, planned: PlannedPayment) => {
    const { manualCapture, review, dispute } = planned;
    if (payment.status === 'requires_capture' && manualCapture) {
      const at = planned.at + manualCapture.after;
      schedule(at, async () => {
        // A fraud review may have captured or canceled it first: then there is nothing left to do.
        if (manualCapture.action === 'cancel')
          await expected(payments.cancel(scope, payment.id, { cancellation_reason: 'requested_by_customer' }, null));
        else {
          const partial = manualCapture.action === 'partial';
          const amount = partial ? Math.round(planned.amount * manualCapture.ratio) : undefined;
          const captured = await expected(
            payments.capture(scope, payment.id, partial ? { amount_to_capture: amount } : null, null),
          );
          if (captured && planned.refund) refund(payment.id, planned, at + planned.refund.after);
        }
      });
    } else if (payment.status === 'succeeded' && planned.refund)
      refund(payment.id, planned, planned.at + planned.refund.after);
    if (payment.outcome?.action === 'review')
      schedule(planned.at + review.after, async () => {
        const seconds = Math.floor(planned.at / 1000);
        const open = await fraudService.listReviews(scope, {
          status: 'open',
          limit: 100,
          'created[gte]': seconds - 1,
          'created[lte]': seconds + 1,
        });
        const found = open.data.find((r) => r.payment === payment.id);
        if (!found) return;
        if (await expected(fraudService.closeReview(scope, found.id, review.decision, null, 'demo-seed', CONTEXT)))
          summary.reviews++;
      });
    if (dispute && payment.status === 'succeeded') {
      // Disputes open in the night's intake pass; the answer comes after that.
      const intake = Math.floor(planned.at / DAY_MS) * DAY_MS + DAY_MS - HOUR_MS / 2;
      schedule(Math.max(planned.at + dispute.after, intake + HOUR_MS), async () => {
        const [opened] = (await disputes.list(scope, { payment: payment.id, limit: 1 }, primaryReads(platform.sql)))
          .data;
        if (!opened || opened.status !== 'needs_response' || dispute.response === 'none') return;
        if (dispute.response === 'accept') await disputes.close(scope, opened.id, CONTEXT);
        else
          await disputes.update(
            scope,
            opened.id,
            {
              evidence: {
                product_description: 'Order shipped with tracking; signed for on delivery.',
                uncategorized_text: `${dispute.response}_evidence`,
              },
            },
            CONTEXT,
          );
      });
    }
  };

  const pay = (planned: PlannedPayment): Task => ({
    at: planned.at,
    run: async () => {
      let paymentMethod: CreatePaymentBody['payment_method'] = { type: 'card', card: cardOf(planned) };
      let customer: string | undefined;
      if (planned.customer?.returning) {
        ({ customer, paymentMethod } = await saved.get(planned.customer.planned.index)!);
      } else if (planned.customer) {
        const { planned: who } = planned.customer;
        const created = (async () => {
          const { id } = await customers.create(scope, { name: who.name, email: who.email }, null);
          const method = await paymentMethods.create(scope, { type: 'card', card: cardOf(planned), customer: id });
          summary.customers++;
          return { customer: id, paymentMethod: method.id };
        })();
        saved.set(who.index, created);
        ({ customer, paymentMethod } = await created);
      }
      const body: CreatePaymentBody = {
        amount: planned.amount,
        currency: planned.currency,
        payment_method: paymentMethod,
        confirm: true,
        capture_method: planned.manualCapture ? 'manual' : 'automatic',
        description: `Order #${10_000 + planned.index}`,
        metadata: { order_id: `ord_${10_000 + planned.index}` },
        ...(customer ? { customer } : {}),
        ...(planned.ip || planned.email
          ? {
              fraud_details: {
                ...(planned.ip ? { ip_address: planned.ip } : {}),
                ...(planned.email ? { email: planned.email } : {}),
              },
            }
          : {}),
      };
      summary.payments++;
      try {
        const payment = await payments.create(scope, body, null, null);
        if (payment.status === 'succeeded' || payment.status === 'requires_capture') summary.succeeded++;
        followUps(payment, planned);
      } catch (error) {
        if (!(error instanceof ApiError && error.statusCode === 402)) throw error;
        summary.declined++;
      }
    },
  });

  const runAll = async (tasks: Task[]) => {
    tasks.sort((a, b) => a.at - b.at);
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) {
        const task = tasks[next++]!;
        await clock.at(task.at, task.run);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 12 }, worker));
  };

  const first = plan[0]!.start;
  const accounts = await clock.at(first, () => prepareTenant(platform, scope));
  const failingDay = plan.find(
    (day, i) => i >= Math.floor(plan.length / 2) && ![0, 1, 6].includes(new Date(day.start).getUTCDay()),
  )?.start;
  for (const day of plan) {
    const nightly = day.start + HOUR_MS;
    if (nightly <= until)
      await clock.at(nightly, async () => {
        await platform.payouts.advanceRail();
        await platform.disputes.review();
        const failing = day.start === failingDay ? await useFailingAccount(platform, scope) : undefined;
        summary.settlements += (await platform.settlements.run()).length;
        if (failing) await platform.bankAccounts.update(scope, accounts.usd, { default_for_currency: true }, CONTEXT);
      });
    const morning = day.start + 9 * HOUR_MS;
    if (morning <= until) await clock.at(morning, () => platform.payouts.advanceRail().then(() => undefined));
    await runAll(day.payments.map(pay));
    for (let tasks = later.get(day.start); tasks?.length; tasks = later.get(day.start)) {
      later.delete(day.start);
      await runAll(tasks);
    }
    await clock.at(Math.min(day.start + DAY_MS - HOUR_MS / 2, until), async () => {
      summary.disputes += await platform.disputes.intake();
    });
    options.log?.(`  ${new Date(day.start).toISOString().slice(0, 10)}: ${day.payments.length} payments`);
  }
  // Hours the history wrote into may have been snapshotted before (a database seeded twice).
  await platform.balanceHistory.forget(scope);
  summary.ms = Date.now() - started;
  return summary;
}

/**
 * A step may find its payment already moved on (a review rejected it, a dispute took its funds): the service's
 * 400 says so, and the step is dropped, as the business would drop it.
 */
async function expected<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof ApiError && error.statusCode === 400) return undefined;
    throw error;
  }
}

function cardOf(planned: PlannedPayment) {
  const { number, exp_month, exp_year, cvc } = planned.card;
  return { number, exp_month, exp_year, cvc };
}

/**
 * Verified bank accounts for the seeded currencies and automatic payouts, so each night's settlement is paid
 * out as a business on the platform would have it; returns the USD account.
 */
async function prepareTenant(platform: Platform, scope: Scope): Promise<{ usd: string }> {
  // First, so that an unknown tenant stops the seed before anything is written.
  const tenant = await platform.tenants.retrieve(scope.tenantId);
  const ids: Record<string, string> = {};
  for (const [currency, country, number] of [
    ['usd', 'US', '000123456789'],
    ['eur', 'DE', '000223456789'],
    ['gbp', 'GB', '000323456789'],
  ] as const) {
    const existing = (await platform.bankAccounts.list(scope, { currency, status: 'verified' })).data.find(
      (account) => account.last4 !== FAILING_ACCOUNT.slice(-4),
    );
    ids[currency] = existing?.id ?? (await verifiedAccount(platform, scope, currency, country, number, true));
  }
  if (!tenant.settlement_schedule.automatic_payouts)
    await platform.tenants.update(
      scope.tenantId,
      { settlement_schedule: { ...tenant.settlement_schedule, automatic_payouts: true } },
      CONTEXT,
    );
  return { usd: ids.usd! };
}

async function verifiedAccount(
  platform: Platform,
  scope: Scope,
  currency: string,
  country: string,
  accountNumber: string,
  makeDefault: boolean,
): Promise<string> {
  const { id } = await platform.bankAccounts.create(
    scope,
    {
      account_number: accountNumber,
      routing_number: ROUTING_NUMBER,
      country,
      currency,
      account_holder_name: 'Demo Shop Ltd',
      default_for_currency: makeDefault,
    },
    CONTEXT,
  );
  // Test mode's micro-deposits are always 32 and 45 cents.
  await platform.bankAccounts.verify(scope, id, [32, 45], CONTEXT);
  return id;
}

/** One night the USD payout goes to a mistyped account, fails at the rail and its funds come back. */
function useFailingAccount(platform: Platform, scope: Scope) {
  return verifiedAccount(platform, scope, 'usd', 'US', FAILING_ACCOUNT, true);
}
