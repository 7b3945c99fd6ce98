import { useQuery } from '@tanstack/react-query';
import { api, PayForwardError } from './api.ts';
import type { ResponseBody } from './api.ts';
import type { Summary, SummaryFigures } from './analytics.ts';

export interface Figures {
  volume: number;
  count: number;
  /** Approved over approved plus declined; null when nothing was decided. */
  approvalRate: number | null;
  fees: number;
  net: number;
}

/** A period as the analytics API answered it: whole UTC hours, `until` exclusive. */
export interface Period {
  from: number;
  until: number;
}

export interface Balance {
  total: number;
  available: number;
  pending: number;
  reserved: number;
}

export interface HomeFigures {
  currency: string;
  today: Figures & Period;
  /** Yesterday from 00:00 UTC to the end of the hour that is under way today, as the hourly rollups can tell it. */
  yesterday: Figures & Period;
  /** Now, from the balance API. */
  balance: Balance;
  /**
   * At the same instant yesterday (`at`, Unix seconds), from the balance API's `at`; null when the account did not
   * exist then (the API refuses instants before it).
   */
  balanceYesterday: (Balance & { at: number }) | null;
}

const DAY = 86_400;

const summary = async (query: { range: 'today' } | Period): Promise<Summary> =>
  (await api.GET('/v1/analytics/summary', { params: { query } })).data!;

function figuresOf(answer: Summary, currency: string): Figures & Period {
  const f: Partial<SummaryFigures> = answer.data.find((d) => d.currency === currency) ?? {};
  return {
    from: answer.from,
    until: answer.until,
    volume: f.volume ?? 0,
    count: f.count ?? 0,
    approvalRate: f.approval_rate_bps == null ? null : f.approval_rate_bps / 10_000,
    fees: f.fees ?? 0,
    net: f.net ?? 0,
  };
}

type Funds = ResponseBody<'/v1/balance', 'get'>;

const NO_BALANCE: Balance = { total: 0, available: 0, pending: 0, reserved: 0 };

/** Each currency's funds, with their total. */
function balancesOf(funds: Funds): Map<string, Balance> {
  const balances = new Map<string, Balance>();
  for (const part of ['available', 'pending', 'reserved'] as const)
    for (const { amount, currency } of funds[part]) {
      const balance = balances.get(currency) ?? { ...NO_BALANCE };
      balance[part] += amount;
      balance.total += amount;
      balances.set(currency, balance);
    }
  return balances;
}

/** The balance at `at`, or null for an instant before the account existed: the API's 400 naming `at`. */
async function balanceAt(at: number): Promise<Funds | null> {
  try {
    return (await api.GET('/v1/balance', { params: { query: { at } } })).data!;
  } catch (error) {
    if (error instanceof PayForwardError && error.status === 400 && error.param === 'at') return null;
    throw error;
  }
}

const busiest = (answer: Summary) => [...answer.data].sort((a, b) => b.count - a.count)[0]?.currency;

/**
 * Home's figures from the analytics API, which reads hourly rollups (a few dozen rows whatever the account's size):
 * today so far (`range=today`: 00:00 UTC to the end of the current hour, by the server's clock) against the same
 * hours of yesterday, that period moved back a day. The rollups cannot split an hour, so yesterday's side holds the
 * whole hour whose first part today's side holds so far. The balance now (GET /v1/balance) against the balance at the
 * same instant yesterday (its `at`), which the API reads from an hourly snapshot plus at most half an hour of ledger
 * movements. In the currency most of today's payments are in (else
 * yesterday's, else the balance's largest, else USD).
 */
export function useHomeFigures() {
  return useQuery({
    queryKey: ['home-figures'],
    queryFn: async (): Promise<HomeFigures> => {
      // The same instant a day ago, by this browser's clock: the balance API keeps hourly snapshots, so any instant.
      const at = Math.floor(Date.now() / 1000) - DAY;
      const [today, funds, before] = await Promise.all([
        summary({ range: 'today' }),
        api.GET('/v1/balance').then((r) => r.data!),
        balanceAt(at),
      ]);
      const yesterday = await summary({ from: today.from - DAY, until: today.until - DAY });
      const balances = balancesOf(funds);
      const largest = [...balances].sort((a, b) => b[1].total - a[1].total)[0]?.[0];
      const currency = busiest(today) ?? busiest(yesterday) ?? largest ?? 'usd';
      return {
        currency,
        today: figuresOf(today, currency),
        yesterday: figuresOf(yesterday, currency),
        balance: balances.get(currency) ?? NO_BALANCE,
        balanceYesterday: before ? { ...(balancesOf(before).get(currency) ?? NO_BALANCE), at } : null,
      };
    },
  });
}
