import { useQuery } from '@tanstack/react-query';
import { api, payforward, type BalanceTransaction, type Payment } from './api.ts';

export interface Figures {
  volume: number;
  count: number;
  /** Approved over approved plus declined; null when nothing was decided. */
  approvalRate: number | null;
  fees: number;
  net: number;
  balance: number;
}

export interface HomeFigures {
  currency: string;
  today: Figures;
  /** From the start of yesterday to this time yesterday. */
  yesterday: Figures;
}

const DAY = 86_400;

async function paymentsBetween(from: number, to: number): Promise<Payment[]> {
  const all: Payment[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await payforward.payments.list({
      limit: 100,
      'created[gte]': from,
      'created[lt]': to,
      ...(cursor ? { starting_after: cursor } : {}),
    });
    all.push(...(page.data as Payment[]));
    if (!page.has_more) return all;
    cursor = page.data.at(-1)!.id;
  }
}

async function balanceChangeSince(since: number, currency: string): Promise<number> {
  let sum = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = (
      await api.GET('/v1/balance_transactions', {
        params: {
          query: { limit: 100, currency, 'created[gte]': since, ...(cursor ? { starting_after: cursor } : {}) },
        },
      })
    ).data!;
    sum += (page.data as BalanceTransaction[]).reduce((total, t) => total + t.net, 0);
    if (!page.has_more) return sum;
    cursor = page.data.at(-1)!.id;
  }
}

const approved = (p: Payment) => p.amount_received > 0 || p.status === 'requires_capture';
const declined = (p: Payment) => !approved(p) && p.attempts.some((a) => a.status === 'declined');

function figuresOf(payments: Payment[], currency: string, balance: number): Figures {
  const mine = payments.filter((p) => p.currency === currency);
  const yes = mine.filter(approved).length;
  const no = mine.filter(declined).length;
  return {
    volume: mine.reduce((sum, p) => sum + p.amount_received, 0),
    count: mine.length,
    approvalRate: yes + no === 0 ? null : yes / (yes + no),
    fees: mine.reduce((sum, p) => sum + (p.fee ?? 0), 0),
    net: mine.reduce((sum, p) => sum + (p.net ?? 0), 0),
    balance,
  };
}

/** The currency most of today's payments are in, else the balance's first, else USD. */
function mainCurrency(payments: Payment[], balanceCurrencies: string[]): string {
  const counts = new Map<string, number>();
  for (const p of payments) counts.set(p.currency, (counts.get(p.currency) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1])[0];
  return top?.[0] ?? balanceCurrencies[0] ?? 'usd';
}

/**
 * Home's figures: today so far against yesterday up to the same time, in the main currency. Computed today from
 * the public lists (payments created in each window, balance transactions since this time yesterday); the one
 * place to switch to the analytics API's rollups once it is merged, which stay fast on accounts with millions of
 * payments where these lists do not.
 */
export function useHomeFigures() {
  return useQuery({
    queryKey: ['home-figures'],
    queryFn: async (): Promise<HomeFigures> => {
      const now = Math.floor(Date.now() / 1000);
      const midnight = new Date();
      midnight.setHours(0, 0, 0, 0);
      const todayStart = Math.floor(midnight.getTime() / 1000);
      const [today, yesterday, balance] = await Promise.all([
        paymentsBetween(todayStart, now + 1),
        paymentsBetween(todayStart - DAY, now - DAY + 1),
        api.GET('/v1/balance').then((r) => r.data!),
      ]);
      const totals = new Map<string, number>();
      for (const part of [balance.available, balance.pending, balance.reserved])
        for (const { amount, currency } of part) totals.set(currency, (totals.get(currency) ?? 0) + amount);
      const currency = mainCurrency(today, [...totals.keys()]);
      const balanceNow = totals.get(currency) ?? 0;
      const changedSince = await balanceChangeSince(now - DAY + 1, currency);
      return {
        currency,
        today: figuresOf(today, currency, balanceNow),
        yesterday: figuresOf(yesterday, currency, balanceNow - changedSince),
      };
    },
  });
}
