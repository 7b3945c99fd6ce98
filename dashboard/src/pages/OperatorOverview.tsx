import { useMemo } from 'react';
import { Anchor, Card, NativeSelect, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, type ResponseBody } from '../lib/api.ts';
import { bpsPercent, bucketLabel } from '../lib/analytics.ts';
import { formatMoney } from '../lib/format.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { Chart, type ChartOption } from '../components/Chart.tsx';
import { ChartCard } from '../components/ChartCard.tsx';
import { operatorPeriod, PeriodControls } from '../components/PeriodControls.tsx';
import { Empty, QueryState } from '../components/states.tsx';

type Volume = ResponseBody<'/v1/analytics/platform/volume', 'get'>;
type Point = Volume['data'][number];

/** Approved over decided, in basis points, from summed counts (null with nothing decided). */
const rateBps = (approved: number, declined: number) =>
  approved + declined === 0 ? null : Math.round((approved * 10_000) / (approved + declined));

interface CurrencyTotal {
  currency: string;
  count: number;
  approved: number;
  declined: number;
  amount: number;
  volume: number;
}

function totalsByCurrency(points: Point[]): CurrencyTotal[] {
  const totals = new Map<string, CurrencyTotal>();
  for (const p of points) {
    const t = totals.get(p.currency) ?? {
      currency: p.currency,
      count: 0,
      approved: 0,
      declined: 0,
      amount: 0,
      volume: 0,
    };
    t.count += p.count;
    t.approved += p.approved_count;
    t.declined += p.declined_count;
    t.amount += p.amount;
    t.volume += p.volume;
    totals.set(p.currency, t);
  }
  return [...totals.values()].sort((a, b) => b.count - a.count);
}

function VolumeCharts({ volume, currency }: { volume: Volume; currency: string }) {
  const starts = [...new Set(volume.data.map((p) => p.start))].sort((a, b) => a - b);
  const labels = starts.map((s) => bucketLabel(s, volume.interval));
  const option = useMemo<ChartOption>(() => {
    const inCurrency = new Map(volume.data.filter((p) => p.currency === currency).map((p) => [p.start, p]));
    const rates = starts.map((start) => {
      const here = volume.data.filter((p) => p.start === start);
      const bps = rateBps(
        here.reduce((s, p) => s + p.approved_count, 0),
        here.reduce((s, p) => s + p.declined_count, 0),
      );
      return bps === null ? null : bps / 100;
    });
    return {
      legend: { top: 0, data: [`Volume (${currency.toUpperCase()})`, 'Approval rate'] },
      xAxis: { type: 'category', data: labels },
      yAxis: [
        { type: 'value', axisLabel: { formatter: (v: number) => formatMoney(v, currency) } },
        { type: 'value', min: 0, max: 100, axisLabel: { formatter: '{value} %' } },
      ],
      series: [
        {
          name: `Volume (${currency.toUpperCase()})`,
          type: 'bar',
          data: starts.map((s) => inCurrency.get(s)?.volume ?? 0),
        },
        { name: 'Approval rate', type: 'line', yAxisIndex: 1, data: rates },
      ],
    };
  }, [volume, currency, starts, labels]);
  const header = [
    'bucket_start',
    'currency',
    'count',
    'approved_count',
    'declined_count',
    'approval_rate_bps',
    'amount',
    'volume',
  ];
  const rows = volume.data.map((p) => [
    bucketLabel(p.start, volume.interval),
    p.currency,
    String(p.count),
    String(p.approved_count),
    String(p.declined_count),
    p.approval_rate_bps === null ? '' : String(p.approval_rate_bps),
    String(p.amount),
    String(p.volume),
  ]);
  return (
    <ChartCard title="Volume and approval rate, every tenant" csvName="platform-volume" header={header} rows={rows}>
      <Chart
        option={option}
        label={`Captured volume in ${currency.toUpperCase()} and approval rate by ${volume.interval}`}
      />
    </ChartCard>
  );
}

function Backlog({ livemode }: { livemode: boolean }) {
  const query = useQuery({
    queryKey: ['operator', 'backlog', livemode],
    queryFn: async () =>
      (await api.GET('/v1/analytics/platform/review_backlog', { params: { query: { livemode } } })).data!,
  });
  return (
    <Card withBorder padding="md" data-testid="backlog">
      <Text size="sm" c="dimmed">
        Fraud reviews open
      </Text>
      <QueryState query={query}>
        {(backlog) => (
          <Text size="xl" fw={700} data-testid="backlog-value">
            {backlog.open_reviews.toLocaleString('en')}
          </Text>
        )}
      </QueryState>
      <Anchor component={Link} href="/operator/reviews" size="sm">
        Review backlog
      </Anchor>
    </Card>
  );
}

export default function OperatorOverview() {
  const [filters, setFilters] = useUrlFilters(['range', 'interval', 'mode', 'currency'] as const);
  const period = operatorPeriod(filters);
  const query = useQuery({
    queryKey: ['operator', 'volume', period],
    queryFn: async () =>
      (await api.GET('/v1/analytics/platform/volume', { params: { query: period } })).data! as Volume,
  });

  return (
    <Stack gap="md">
      <Title order={1}>Overview</Title>
      <Text size="sm" c="dimmed">
        Every tenant&apos;s payments together, from the analytics rollups. No tenant&apos;s card data is shown here.
      </Text>
      <PeriodControls period={period} onChange={setFilters} />
      <QueryState query={query}>
        {(volume) => {
          const totals = totalsByCurrency(volume.data);
          const currency = totals.find((t) => t.currency === filters.currency)?.currency ?? totals[0]?.currency;
          const all = totals.reduce(
            (s, t) => ({ approved: s.approved + t.approved, declined: s.declined + t.declined }),
            {
              approved: 0,
              declined: 0,
            },
          );
          return (
            <Stack gap="md">
              <SimpleGrid cols={{ base: 1, xs: 3 }} spacing="sm">
                <Card withBorder padding="md" data-testid="platform-count">
                  <Text size="sm" c="dimmed">
                    Payments
                  </Text>
                  <Text size="xl" fw={700} data-testid="platform-count-value">
                    {totals.reduce((s, t) => s + t.count, 0).toLocaleString('en')}
                  </Text>
                </Card>
                <Card withBorder padding="md" data-testid="platform-approval">
                  <Text size="sm" c="dimmed">
                    Approval rate
                  </Text>
                  <Text size="xl" fw={700} data-testid="platform-approval-value">
                    {bpsPercent(rateBps(all.approved, all.declined))}
                  </Text>
                </Card>
                <Backlog livemode={period.livemode} />
              </SimpleGrid>
              {totals.length === 0 ? (
                <Empty>No payments on the platform in this period.</Empty>
              ) : (
                <>
                  <NativeSelect
                    label="Currency of the volume chart"
                    value={currency}
                    data={totals.map((t) => ({ value: t.currency, label: t.currency.toUpperCase() }))}
                    onChange={(e) => setFilters({ currency: e.currentTarget.value })}
                    maw={240}
                  />
                  <VolumeCharts volume={volume} currency={currency!} />
                  <Table.ScrollContainer
                    minWidth={560}
                    scrollAreaProps={{ viewportProps: { tabIndex: 0, 'aria-label': 'Totals per currency, table' } }}
                  >
                    <Table data-testid="platform-totals">
                      <Table.Caption>Totals per currency</Table.Caption>
                      <Table.Thead>
                        <Table.Tr>
                          <Table.Th scope="col">Currency</Table.Th>
                          <Table.Th scope="col">Payments</Table.Th>
                          <Table.Th scope="col">Approval rate</Table.Th>
                          <Table.Th scope="col">Amount</Table.Th>
                          <Table.Th scope="col">Captured</Table.Th>
                        </Table.Tr>
                      </Table.Thead>
                      <Table.Tbody>
                        {totals.map((t) => (
                          <Table.Tr key={t.currency}>
                            <Table.Td>{t.currency.toUpperCase()}</Table.Td>
                            <Table.Td>{t.count.toLocaleString('en')}</Table.Td>
                            <Table.Td>{bpsPercent(rateBps(t.approved, t.declined))}</Table.Td>
                            <Table.Td>{formatMoney(t.amount, t.currency)}</Table.Td>
                            <Table.Td>{formatMoney(t.volume, t.currency)}</Table.Td>
                          </Table.Tr>
                        ))}
                      </Table.Tbody>
                    </Table>
                  </Table.ScrollContainer>
                </>
              )}
            </Stack>
          );
        }}
      </QueryState>
    </Stack>
  );
}
