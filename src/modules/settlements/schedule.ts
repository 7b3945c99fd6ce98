import { Type, type Static } from 'typebox';

export const SettlementScheduleSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('instant'), Type.Literal('daily')], {
      description:
        '`instant`: captured funds are available as soon as the capture commits, for the plan’s instant-settlement fee. `daily`: the settlement job makes them available after `delay_days` business days.',
    }),
    delay_days: Type.Integer({
      minimum: 0,
      maximum: 30,
      description: 'Business days (Monday to Friday, UTC) between capture and availability, for `daily`.',
    }),
    automatic_payouts: Type.Optional(
      Type.Boolean({
        description:
          'After each settlement, pay out the whole available balance of that currency (method standard) and link the settlements to that payout.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SettlementSchedule = Static<typeof SettlementScheduleSchema>;

const DAY_MS = 86_400_000;

/**
 * When funds captured at `at` become available: at once for instant settlement or a zero delay,
 * else at 00:00 UTC of the `delay_days`-th business day after the capture's (UTC) day. Weekends
 * are skipped; bank holidays are not modelled.
 */
export function availableOn(at: Date, schedule: SettlementSchedule): Date {
  if (schedule.type === 'instant' || schedule.delay_days === 0) return at;
  let day = Math.floor(at.getTime() / DAY_MS) * DAY_MS;
  for (let left = schedule.delay_days; left > 0;) {
    day += DAY_MS;
    const weekday = new Date(day).getUTCDay();
    if (weekday !== 0 && weekday !== 6) left--;
  }
  return new Date(day);
}
