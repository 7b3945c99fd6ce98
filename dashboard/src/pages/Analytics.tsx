import { useMemo } from 'react';
import {
  Card,
  Group,
  NativeSelect,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Tabs,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMediaQuery } from '@mantine/hooks';
import { useQuery } from '@tanstack/react-query';
import { api } from '../lib/api.ts';
import {
  bpsPercent,
  bucketLabel,
  dayText,
  DIMENSIONS,
  hourlyAllowed,
  MORE_METRICS,
  periodQuery,
  RANGES,
  type Breakdown,
  type Dimension,
  type Metric,
  type Summary,
  type SummaryFigures,
  type Timeseries,
} from '../lib/analytics.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { formatMoney } from '../lib/format.ts';
import { Chart, type ChartOption } from '../components/Chart.tsx';
import { ChartCard } from '../components/ChartCard.tsx';
import { Empty, QueryState } from '../components/states.tsx';

type Period = ReturnType<typeof periodQuery>;

const EMPTY_FIGURES = (currency: string): SummaryFigures => ({
  currency,
  count: 0,
  amount: 0,
  approved_count: 0,
  declined_count: 0,
  canceled_count: 0,
  approval_rate_bps: null,
  volume: 0,
  fees: 0,
  refunds_count: 0,
  refunds_amount: 0,
  disputes_count: 0,
  disputes_amount: 0,
  disputes_lost_count: 0,
  disputes_lost_amount: 0,
  fraud_disputes_count: 0,
  fraud_disputes_amount: 0,
  fraud_rate_bps: null,
  net: 0,
});

const periodText = (from: number, until: number) =>
  `${new Date(from * 1000).toISOString().slice(0, 16).replace('T', ' ')} – ${new Date(until * 1000)
    .toISOString()
    .slice(0, 16)
    .replace('T', ' ')} UTC`;

function change(now: number | null, before: number | null, format: (n: number) => string) {
  if (now === null || before === null) return 'no comparison';
  const diff = now - before;
  return `${diff >= 0 ? '+' : '−'}${format(Math.abs(diff))} vs previous period`;
}

function Figure({
  id,
  label,
  value,
  shown,
  previous,
  format,
}: {
  id: string;
  label: string;
  value: number | null;
  shown: string;
  previous: number | null | undefined;
  format: (n: number) => string;
}) {
  return (
    <Card withBorder padding="md" data-testid={`figure-${id}`} data-value={value ?? ''}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <Text size="xl" fw={700} data-testid={`figure-${id}-value`}>
        {shown}
      </Text>
      <Text size="xs" c="dimmed">
        {previous === undefined ? '' : change(value, previous, format)}
      </Text>
    </Card>
  );
}

function Figures({ now, before }: { now: SummaryFigures; before: SummaryFigures | undefined }) {
  const money = (n: number) => formatMoney(n, now.currency);
  const count = (n: number) => n.toLocaleString('en');
  const points = (n: number) => `${(n / 100).toFixed(2)} pts`;
  const bps = (n: number) => `${n} bps`;
  const figure = (id: string, label: string, key: keyof SummaryFigures, format: (n: number) => string) => {
    const value = now[key] as number | null;
    const previous = before ? (before[key] as number | null) : undefined;
    const shown = value === null ? '—' : key === 'approval_rate_bps' ? bpsPercent(value) : format(value);
    return <Figure key={id} id={id} label={label} value={value} shown={shown} previous={previous} format={format} />;
  };
  return (
    <SimpleGrid cols={{ base: 2, md: 4 }} spacing="sm">
      {figure('count', 'Payments', 'count', count)}
      {figure('amount', 'Amount of payments', 'amount', money)}
      {figure('volume', 'Captured volume', 'volume', money)}
      {figure('approval', 'Approval rate', 'approval_rate_bps', points)}
      {figure('fees', 'Fees', 'fees', money)}
      {figure('net', 'Net', 'net', money)}
      {figure('refunds', 'Refunds', 'refunds_amount', money)}
      {figure('refunds-count', 'Refunds (count)', 'refunds_count', count)}
      {figure('disputes', 'Disputes', 'disputes_amount', money)}
      {figure('disputes-count', 'Disputes (count)', 'disputes_count', count)}
      {figure('declined', 'Declined payments', 'declined_count', count)}
      {figure('fraud', 'Fraud rate', 'fraud_rate_bps', bps)}
    </SimpleGrid>
  );
}

function useTimeseries(period: Period, metric: Metric, interval: string, currency: string) {
  return useQuery({
    queryKey: ['analytics', 'timeseries', period, metric, interval, currency],
    queryFn: async () =>
      (
        await api.GET('/v1/analytics/timeseries', {
          params: {
            query: { ...period, metric, interval: interval as 'hour' | 'day', currency, compare: 'previous' },
          },
        })
      ).data! as Timeseries,
  });
}

/** A metric over the period, with the previous period of the same length as a dashed line beneath it. */
function TrendCard({
  title,
  csvName,
  series,
  format,
}: {
  title: string;
  csvName: string;
  series: Timeseries;
  format: (n: number) => string;
}) {
  const previous = series.previous?.data ?? [];
  const header = ['bucket_start', 'value', 'previous_bucket_start', 'previous_value'];
  const rows = series.data.map((point, i) => [
    bucketLabel(point.start, series.interval),
    point.value === null ? '' : String(point.value),
    previous[i] ? bucketLabel(previous[i].start, series.interval) : '',
    previous[i]?.value == null ? '' : String(previous[i].value),
  ]);
  // A rate is null in buckets with nothing decided: a lone value between gaps is drawn only as a dot.
  const dots = series.data.length <= 60 || series.metric.endsWith('_bps');
  const option = useMemo<ChartOption>(
    () => ({
      legend: { top: 0, data: ['This period', 'Previous period'] },
      xAxis: { type: 'category', data: series.data.map((p) => bucketLabel(p.start, series.interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (value: number) => format(value) } },
      tooltip: {
        trigger: 'axis',
        renderMode: 'richText',
        confine: true,
        valueFormatter: (value) => (typeof value === 'number' ? format(value) : '—'),
      },
      series: [
        { name: 'This period', type: 'line', showSymbol: dots, data: series.data.map((p) => p.value) },
        {
          name: 'Previous period',
          type: 'line',
          showSymbol: dots,
          lineStyle: { type: 'dashed' },
          data: previous.map((p) => p.value),
        },
      ],
    }),
    [series, format, previous, dots],
  );
  const total = series.data.reduce((sum, p) => sum + (p.value ?? 0), 0);
  return (
    <ChartCard title={title} csvName={csvName} header={header} rows={rows}>
      <Chart option={option} label={`${title} by ${series.interval}, ${series.data.length} buckets`} />
      {!series.metric.endsWith('_bps') && (
        <Text size="xs" c="dimmed" data-testid={`${csvName}-total`}>
          Total {format(total)}
        </Text>
      )}
    </ChartCard>
  );
}

function Trend({
  title,
  csvName,
  period,
  metric,
  interval,
  currency,
  format,
}: {
  title: string;
  csvName: string;
  period: Period;
  metric: Metric;
  interval: string;
  currency: string;
  format: (n: number) => string;
}) {
  const query = useTimeseries(period, metric, interval, currency);
  return (
    <QueryState query={query}>
      {(series) => <TrendCard title={title} csvName={csvName} series={series} format={format} />}
    </QueryState>
  );
}

function BreakdownCard({ breakdown, label, currency }: { breakdown: Breakdown; label: string; currency: string }) {
  const previous = new Map((breakdown.previous?.data ?? []).map((row) => [row.value, row]));
  const header = ['value', 'count', 'approved_count', 'declined_count', 'approval_rate_bps', 'amount', 'volume'];
  const rows = breakdown.data.map((row) => [
    row.value,
    String(row.count),
    String(row.approved_count),
    String(row.declined_count),
    row.approval_rate_bps === null ? '' : String(row.approval_rate_bps),
    row.amount === null ? '' : String(row.amount),
    row.volume === null ? '' : String(row.volume),
  ]);
  const option = useMemo<ChartOption>(
    () => ({
      legend: { top: 0, data: ['This period', 'Previous period'] },
      xAxis: { type: 'category', data: breakdown.data.map((row) => row.value) },
      yAxis: { type: 'value' },
      series: [
        { name: 'This period', type: 'bar', data: breakdown.data.map((row) => row.count) },
        {
          name: 'Previous period',
          type: 'bar',
          data: breakdown.data.map((row) => previous.get(row.value)?.count ?? 0),
        },
      ],
    }),
    [breakdown, previous],
  );
  const money = (n: number | null) => (n === null ? '—' : formatMoney(n, breakdown.currency ?? currency));
  return (
    <ChartCard title={`Payments by ${label.toLowerCase()}`} csvName={`by-${breakdown.dimension}`} {...{ header, rows }}>
      {breakdown.data.length === 0 ? (
        <Empty>No payments in this period.</Empty>
      ) : (
        <>
          <Chart option={option} label={`Payments by ${label.toLowerCase()}: bar chart`} height={220} />
          <Table.ScrollContainer
            minWidth={520}
            // A region that scrolls sideways must be reachable by keyboard to be scrolled.
            scrollAreaProps={{
              viewportProps: { tabIndex: 0, 'aria-label': `Payments by ${label.toLowerCase()}, table` },
            }}
          >
            <Table data-testid="breakdown-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th scope="col">{label}</Table.Th>
                  <Table.Th scope="col">Payments</Table.Th>
                  <Table.Th scope="col">Previous</Table.Th>
                  <Table.Th scope="col">Approval rate</Table.Th>
                  <Table.Th scope="col">Amount</Table.Th>
                  <Table.Th scope="col">Captured</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {breakdown.data.map((row) => (
                  <Table.Tr key={row.value}>
                    <Table.Td>{row.value}</Table.Td>
                    <Table.Td>{row.count}</Table.Td>
                    <Table.Td>{previous.get(row.value)?.count ?? 0}</Table.Td>
                    <Table.Td>{bpsPercent(row.approval_rate_bps)}</Table.Td>
                    <Table.Td>{money(row.amount)}</Table.Td>
                    <Table.Td>{money(row.volume)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </>
      )}
    </ChartCard>
  );
}

function Breakdowns({
  period,
  currency,
  by,
  onBy,
}: {
  period: Period;
  currency: string;
  by: Dimension;
  onBy: (d: string) => void;
}) {
  // Across currencies for the currency breakdown (that is its point); in the chosen currency for the others.
  const query = useQuery({
    queryKey: ['analytics', 'breakdown', period, by, currency],
    queryFn: async () =>
      (
        await api.GET('/v1/analytics/breakdown', {
          params: {
            query: { ...period, dimension: by, compare: 'previous', ...(by === 'currency' ? {} : { currency }) },
          },
        })
      ).data! as Breakdown,
  });
  const label = DIMENSIONS.find((d) => d.value === by)!.label;
  return (
    <Stack gap="xs">
      <Tabs value={by} onChange={(value) => value && onBy(value)} keepMounted={false}>
        <Tabs.List aria-label="Break payments down by">
          {DIMENSIONS.map((d) => (
            <Tabs.Tab key={d.value} value={d.value}>
              {d.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
      </Tabs>
      <QueryState query={query}>
        {(breakdown) => <BreakdownCard breakdown={breakdown} label={label} currency={currency} />}
      </QueryState>
    </Stack>
  );
}

function DeclineReasons({ summary }: { summary: Summary }) {
  const before = new Map((summary.previous?.decline_reasons ?? []).map((r) => [r.reason, r.count]));
  const rows = summary.decline_reasons.map((r) => [r.reason, String(r.count), String(before.get(r.reason) ?? 0)]);
  const option = useMemo<ChartOption>(
    () => ({
      xAxis: { type: 'value' },
      yAxis: { type: 'category', data: summary.decline_reasons.map((r) => r.reason), inverse: true },
      series: [{ name: 'Declines', type: 'bar', data: summary.decline_reasons.map((r) => r.count) }],
    }),
    [summary],
  );
  return (
    <ChartCard
      title="Decline reasons"
      csvName="decline-reasons"
      header={['reason', 'count', 'previous_count']}
      rows={rows}
    >
      {summary.decline_reasons.length === 0 ? (
        <Empty>No declines in this period.</Empty>
      ) : (
        <Chart
          option={option}
          label={`Decline reasons: ${summary.decline_reasons.map((r) => `${r.reason} ${r.count}`).join(', ')}`}
          height={Math.max(140, 40 * summary.decline_reasons.length)}
        />
      )}
    </ChartCard>
  );
}

export default function Analytics() {
  const [filters, setFilters] = useUrlFilters([
    'range',
    'from',
    'until',
    'interval',
    'currency',
    'metric',
    'by',
  ] as const);
  const period = periodQuery(filters.range, filters.from, filters.until);
  // periodQuery falls back to 30 days for an incomplete or reversed custom period: say so beside the dates.
  const customError =
    filters.range === 'custom' && period.range
      ? 'Choose two dates, the second not before the first (showing 30 days)'
      : null;
  const range = filters.range && RANGES.some((r) => r.value === filters.range) ? filters.range : '30d';
  const hourly = hourlyAllowed(period);
  const interval =
    hourly && (filters.interval === 'hour' || (!filters.interval && period.range === 'today')) ? 'hour' : 'day';
  const metric = (MORE_METRICS.find((m) => m.value === filters.metric) ?? MORE_METRICS[0]).value;
  const by = (DIMENSIONS.find((d) => d.value === filters.by) ?? DIMENSIONS[0]).value;

  const summary = useQuery({
    queryKey: ['analytics', 'summary', period],
    queryFn: async () =>
      (await api.GET('/v1/analytics/summary', { params: { query: { ...period, compare: 'previous' } } })).data!,
  });
  const currencies = summary.data?.data.map((f) => f.currency) ?? [];
  const busiest = [...(summary.data?.data ?? [])].sort((a, b) => b.count - a.count)[0]?.currency;
  const currency = (currencies.includes(filters.currency) ? filters.currency : busiest) ?? 'usd';
  const money = useMemo(() => (n: number) => formatMoney(n, currency), [currency]);
  const count = useMemo(() => (n: number) => n.toLocaleString('en'), []);
  const rate = useMemo(() => (n: number) => `${(n / 100).toFixed(0)} %`, []);
  const more = MORE_METRICS.find((m) => m.value === metric)!;
  // Five periods side by side are wider than a phone: stacked there.
  const narrow = useMediaQuery('(max-width: 36em)');

  return (
    <Stack gap="md">
      <Title order={1}>Analytics</Title>
      <Group gap="sm" align="end" wrap="wrap">
        <Stack gap={4}>
          <Text size="sm" fw={500} id="range-label">
            Period
          </Text>
          <SegmentedControl
            aria-labelledby="range-label"
            orientation={narrow ? 'vertical' : 'horizontal'}
            value={range}
            data={RANGES.map((r) => ({ value: r.value, label: r.label }))}
            onChange={(value) =>
              setFilters(
                value === 'custom'
                  ? {
                      range: value,
                      from: filters.from || dayText(Date.now() / 1000 - 7 * 86_400),
                      until: filters.until || dayText(Date.now() / 1000),
                    }
                  : { range: value, from: null, until: null },
              )
            }
          />
        </Stack>
        {range === 'custom' && (
          <>
            <TextInput
              type="date"
              label="From (UTC)"
              value={filters.from}
              onChange={(e) => setFilters({ from: e.currentTarget.value })}
            />
            <TextInput
              type="date"
              label="To (UTC, inclusive)"
              value={filters.until}
              onChange={(e) => setFilters({ until: e.currentTarget.value })}
              error={customError}
            />
          </>
        )}
        <Stack gap={4}>
          <Text size="sm" fw={500} id="interval-label">
            Interval
          </Text>
          <SegmentedControl
            aria-labelledby="interval-label"
            value={interval}
            data={[
              { value: 'hour', label: 'Hourly', disabled: !hourly },
              { value: 'day', label: 'Daily' },
            ]}
            onChange={(value) => setFilters({ interval: value })}
          />
        </Stack>
        {currencies.length > 0 && (
          <NativeSelect
            label="Currency"
            value={currency}
            data={currencies.map((c) => ({ value: c, label: c.toUpperCase() }))}
            onChange={(e) => setFilters({ currency: e.currentTarget.value })}
          />
        )}
      </Group>

      <QueryState query={summary}>
        {(data) => {
          const now = data.data.find((f) => f.currency === currency) ?? EMPTY_FIGURES(currency);
          const before = data.previous?.data.find((f) => f.currency === currency) ?? EMPTY_FIGURES(currency);
          return (
            <Stack gap="md">
              <Text size="sm" c="dimmed" data-testid="period">
                {periodText(data.from, data.until)}
                {data.previous && `, compared with ${periodText(data.previous.from, data.previous.until)}`}
              </Text>
              {data.data.length === 0 && <Empty>No payments in this period.</Empty>}
              <Figures now={now} before={before} />
              <ChartCard
                title="Figures"
                csvName="summary"
                header={['metric', 'value', 'previous_value']}
                rows={(Object.keys(now) as (keyof SummaryFigures)[])
                  .filter((key) => key !== 'currency')
                  .map((key) => [key, String(now[key] ?? ''), String(before[key] ?? '')])}
              >
                <Text size="sm" c="dimmed">
                  Every figure above for {currency.toUpperCase()}, in minor units and basis points.
                </Text>
              </ChartCard>
              <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
                <Trend
                  title="Captured volume"
                  csvName="volume"
                  metric="volume"
                  format={money}
                  {...{ period, interval, currency }}
                />
                <Trend
                  title="Payments"
                  csvName="count"
                  metric="count"
                  format={count}
                  {...{ period, interval, currency }}
                />
                <Trend
                  title="Approval rate"
                  csvName="approval-rate"
                  metric="approval_rate_bps"
                  format={rate}
                  {...{ period, interval, currency }}
                />
                <Stack gap="xs">
                  <NativeSelect
                    label="More figures over time"
                    value={metric}
                    data={MORE_METRICS.map((m) => ({ value: m.value, label: m.label }))}
                    onChange={(e) => setFilters({ metric: e.currentTarget.value })}
                  />
                  <Trend
                    title={more.label}
                    csvName={metric}
                    metric={metric}
                    format={more.money ? money : count}
                    {...{ period, interval, currency }}
                  />
                </Stack>
              </SimpleGrid>
              <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
                <DeclineReasons summary={data} />
                <Breakdowns period={period} currency={currency} by={by} onBy={(value) => setFilters({ by: value })} />
              </SimpleGrid>
            </Stack>
          );
        }}
      </QueryState>
    </Stack>
  );
}
